//! CSAF 2.0 advisories (OASIS CSAF v2.0, `docs/vulnerabilities.md`, "Advisories"): the document
//! of a vulnerability report, built from facts alone (the report, its links, the products and
//! releases they name, the revisions published before, the publisher's configuration), and the
//! provider's files around the published ones (§7: `provider-metadata.json`, `index.txt`,
//! `changes.csv`, the file names of §5.1).
//!
//! A report becomes one vulnerability. Its links say which product versions are affected, fixed
//! or not affected; a link naming no release stands for every version of its product
//! (`vers:all/*`). Links that name an SBOM component alone say nothing of a product version and
//! are left out. The reporter's description is confidential and is never copied: the public
//! text is what the admin gives when writing the advisory.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::clock::format_timestamp;
use crate::code::{ErrorCode, Refusal};
use crate::entity::Product;
use crate::event::Sha256Hash;
use crate::field::FieldError;
use crate::firmware::Release;
use crate::vuln::{CvssVector, Justification, Link, LinkStatus, Report, line, multiline};

/// CSAF 2.0's category of a publisher (§3.2.1.8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublisherCategory {
    /// Coordinates the response (a CERT).
    Coordinator,
    /// Found the vulnerability.
    Discoverer,
    /// None of the others.
    Other,
    /// Translates another's advisories.
    Translator,
    /// Uses the product.
    User,
    /// Makes the product: a brand owner.
    Vendor,
}

impl PublisherCategory {
    /// The six.
    pub const ALL: [PublisherCategory; 6] = [
        Self::Coordinator,
        Self::Discoverer,
        Self::Other,
        Self::Translator,
        Self::User,
        Self::Vendor,
    ];

    /// The name in a document.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Coordinator => "coordinator",
            Self::Discoverer => "discoverer",
            Self::Other => "other",
            Self::Translator => "translator",
            Self::User => "user",
            Self::Vendor => "vendor",
        }
    }

    /// Parses a name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// Who publishes the advisories (`[csaf]`; §3.2.1.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publisher {
    /// The publisher's name, also the product tree's vendor.
    pub name: String,
    /// Its namespace: an https URL it controls.
    pub namespace: String,
    /// Its category; a brand owner is a `vendor`.
    pub category: PublisherCategory,
    /// How to reach it, if said.
    pub contact_details: Option<String>,
}

/// The installation's CSAF configuration (`[csaf]`): checked by the binary when it loads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsafConfig {
    /// The publisher of every advisory.
    pub publisher: Publisher,
    /// The installation's public https URL, without a trailing slash: the provider's files are
    /// under `<base_url>/.well-known/csaf/`.
    pub base_url: String,
    /// Whether aggregators may list this provider (§7.1.20, `list_on_CSAF_aggregators`).
    pub list_on_aggregators: bool,
    /// Whether aggregators may mirror its advisories (`mirror_on_CSAF_aggregators`).
    pub mirror_on_aggregators: bool,
}

impl CsafConfig {
    /// The URL of the TLP:WHITE directory, with a trailing slash.
    pub fn directory_url(&self) -> String {
        format!("{}/.well-known/csaf/white/", self.base_url)
    }

    /// The URL of `provider-metadata.json`.
    pub fn canonical_url(&self) -> String {
        format!("{}/.well-known/csaf/provider-metadata.json", self.base_url)
    }
}

/// A CVE id, `CVE-YYYY-NNNN…` (the CSAF schema's pattern).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cve(String);

impl Cve {
    /// Checks `text` as the request's field `field`.
    ///
    /// # Errors
    /// [`FieldError`] (unprocessable) unless it is `CVE-`, four digits, `-`, and four or more.
    pub fn parse(field: &'static str, text: &str) -> Result<Self, FieldError> {
        let ok = text.strip_prefix("CVE-").is_some_and(|rest| {
            rest.split_once('-').is_some_and(|(year, number)| {
                year.len() == 4
                    && (4..=19).contains(&number.len())
                    && year
                        .bytes()
                        .chain(number.bytes())
                        .all(|b| b.is_ascii_digit())
            })
        });
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(FieldError::rule(
                field,
                "is not a CVE id: CVE-YYYY-NNNN, four or more digits after the year",
            ))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The longest title, in characters.
pub const TITLE_MAX: usize = 256;
/// The longest public description, in characters.
pub const DESCRIPTION_MAX: usize = 8 * 1024;
/// The longest revision summary, in characters.
pub const SUMMARY_MAX: usize = 1024;

/// What the admin says when writing an advisory: which kind, and the public texts (the
/// reporter's description is never used).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdvisoryOptions {
    /// A VEX document (the `csaf_vex` profile) rather than a security advisory.
    pub vex: bool,
    /// The vulnerability's CVE id, when one is assigned.
    pub cve: Option<Cve>,
    /// The document's title [default: "Vulnerability in" and the products' names].
    pub title: Option<String>,
    /// The vulnerability's public description [default: a sentence naming the products].
    pub description: Option<String>,
    /// This revision's summary in the revision history [default: "Initial release." for the
    /// first, "Update." after].
    pub summary: Option<String>,
}

impl AdvisoryOptions {
    /// Checks the request's fields.
    ///
    /// # Errors
    /// [`FieldError`] for a malformed CVE id or a text that is blank, too long or holds
    /// control characters.
    pub fn parse(req: &crate::api::WriteAdvisory) -> Result<Self, FieldError> {
        Ok(Self {
            vex: req.vex,
            cve: req
                .cve
                .as_deref()
                .map(|c| Cve::parse("cve", c))
                .transpose()?,
            title: req
                .title
                .as_deref()
                .map(|t| line("title", t, TITLE_MAX))
                .transpose()?,
            description: req
                .description
                .as_deref()
                .map(|d| multiline("description", d, DESCRIPTION_MAX))
                .transpose()?,
            summary: req
                .summary
                .as_deref()
                .map(|s| line("summary", s, SUMMARY_MAX))
                .transpose()?,
        })
    }
}

/// A revision published before: what the revision history lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// Its version, 1 for the first.
    pub version: u32,
    /// When it was published.
    pub date: OffsetDateTime,
    /// Its summary.
    pub summary: String,
}

/// Whether the document is a draft (written, not stored) or a published revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackingStatus {
    /// `draft`: written for review, stored and logged nowhere.
    Draft,
    /// `final`: a published revision.
    Final,
}

impl TrackingStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Final => "final",
        }
    }
}

/// Everything a document is built from.
#[derive(Debug, Clone, Copy)]
pub struct AdvisoryFacts<'a> {
    /// The report.
    pub report: &'a Report,
    /// Its links.
    pub links: &'a [Link],
    /// The products the links name.
    pub products: &'a [Product],
    /// The releases the links name.
    pub releases: &'a [Release],
    /// The revisions of this tracking id published before, any order.
    pub history: &'a [Revision],
    /// The publisher and the provider's URLs.
    pub config: &'a CsafConfig,
    /// What the admin said.
    pub options: &'a AdvisoryOptions,
    /// Draft or final.
    pub status: TrackingStatus,
    /// Now, by the authority's clock.
    pub now: OffsetDateTime,
    /// The generator's version (Touchmark's).
    pub generator_version: &'a str,
}

/// A document, built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advisory {
    /// The report it is about.
    pub report: String,
    /// `/document/tracking/id`.
    pub tracking_id: String,
    /// `/document/tracking/version`.
    pub version: u32,
    /// Whether it is a VEX document.
    pub vex: bool,
    /// This revision's summary.
    pub summary: String,
    /// `/document/tracking/initial_release_date`: the year of its folder.
    pub initial_at: OffsetDateTime,
    /// `/document/tracking/current_release_date`.
    pub published_at: OffsetDateTime,
    /// The document's exact bytes (JSON).
    pub document: Vec<u8>,
    /// Their SHA-256.
    pub sha256: Sha256Hash,
}

impl Advisory {
    /// Its file name (§5.1).
    pub fn file_name(&self) -> String {
        file_name(&self.tracking_id)
    }

    /// Its path under the TLP:WHITE directory: `YYYY/<file name>` (§7.1.11, the year of the
    /// initial release).
    pub fn path(&self) -> String {
        format!("{}/{}", self.initial_at.year(), self.file_name())
    }
}

/// The tracking id of a report's advisory: the report's id, and `-vex` after it for its VEX
/// document, so the two are versioned apart and served under their own file names.
pub fn tracking_id(report: &str, vex: bool) -> String {
    if vex {
        format!("{report}-vex")
    } else {
        report.to_owned()
    }
}

/// The file name of a tracking id (CSAF 2.0 §5.1): lowercased, every run of characters other
/// than `+`, `-`, a-z and 0-9 replaced by one `_`, then `.json`.
pub fn file_name(tracking_id: &str) -> String {
    let mut out = String::with_capacity(tracking_id.len() + 5);
    let mut in_run = false;
    for c in tracking_id.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '+' || c == '-' {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    out.push_str(".json");
    out
}

/// A product version as the document names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Version {
    /// The version's sort key (`None`: every version).
    key: Option<(u8, u8, u16, u32)>,
    /// Its text, or `None` for every version.
    text: Option<String>,
    release: Option<String>,
}

fn product_id(product: &str, version: Option<&str>) -> String {
    format!("{product}@{}", version.unwrap_or("*"))
}

fn refused(message: impl Into<String>) -> Refusal {
    Refusal::new(ErrorCode::Unprocessable, message)
}

/// What the links say, per product id.
#[derive(Debug, Default)]
struct Statuses {
    status: BTreeMap<String, (LinkStatus, Option<Justification>)>,
    /// Per product: the versions named.
    versions: BTreeMap<String, BTreeSet<Version>>,
}

fn statuses(facts: &AdvisoryFacts<'_>) -> Result<Statuses, Refusal> {
    let mut out = Statuses::default();
    for link in facts.links {
        if link.release.is_none() && link.purl.is_some() {
            continue;
        }
        let product = link.product.as_str();
        let version = match (&link.release, &link.version) {
            (Some(release), Some(version)) => Version {
                key: crate::firmware::parse_version(version),
                text: Some(version.clone()),
                release: Some(release.clone()),
            },
            _ => Version {
                key: None,
                text: None,
                release: None,
            },
        };
        let id = product_id(product, version.text.as_deref());
        let said = (link.status, link.justification);
        match out.status.get(&id) {
            Some(before) if *before != said => {
                return Err(refused(format!(
                    "the links contradict each other on {id}: {} and {}; an advisory states one \
                     status per product version",
                    before.0, said.0
                )));
            }
            _ => {
                out.status.insert(id, said);
            }
        }
        out.versions
            .entry(product.to_owned())
            .or_default()
            .insert(version);
    }
    if out.status.is_empty() {
        return Err(Refusal::new(
            ErrorCode::ReportNotLinked,
            format!(
                "report {} is linked to no product or release: link it first (`touchmark vuln \
                 link`), then write its advisory",
                facts.report.id
            ),
        ));
    }
    Ok(out)
}

fn ids_with(statuses: &Statuses, want: impl Fn(LinkStatus) -> bool) -> Vec<String> {
    statuses
        .status
        .iter()
        .filter(|(_, (s, _))| want(*s))
        .map(|(id, _)| id.clone())
        .collect()
}

fn product_tree(facts: &AdvisoryFacts<'_>, statuses: &Statuses) -> Result<Value, Refusal> {
    let mut products = Vec::new();
    for (product_id_text, versions) in &statuses.versions {
        let product = facts
            .products
            .iter()
            .find(|p| p.id.as_str() == product_id_text)
            .ok_or_else(|| refused(format!("product {product_id_text} is not known here")))?;
        let mut branches = Vec::new();
        for v in versions {
            let id = product_id(product_id_text, v.text.as_deref());
            match (&v.text, &v.release) {
                (Some(text), Some(release_id)) => {
                    let mut full = json!({
                        "name": format!("{} {}", product.name, text),
                        "product_id": id,
                    });
                    if let Some(release) = facts.releases.iter().find(|r| &r.id == release_id) {
                        full["product_identification_helper"] = json!({
                            "hashes": [{
                                "file_hashes": [{
                                    "algorithm": "sha256",
                                    "value": release.image_sha256.to_hex(),
                                }],
                                "filename": format!("{}-{}.bin", product.id, release.version),
                            }],
                        });
                    }
                    branches.push(json!({
                        "category": "product_version",
                        "name": text,
                        "product": full,
                    }));
                }
                _ => branches.push(json!({
                    "category": "product_version_range",
                    "name": "vers:all/*",
                    "product": {
                        "name": format!("{} (every version)", product.name),
                        "product_id": id,
                    },
                })),
            }
        }
        products.push(json!({
            "category": "product_name",
            "name": product.name,
            "branches": branches,
        }));
    }
    Ok(json!({
        "branches": [{
            "category": "vendor",
            "name": facts.config.publisher.name,
            "branches": products,
        }],
    }))
}

fn remediations(facts: &AdvisoryFacts<'_>, statuses: &Statuses) -> Vec<Value> {
    let mut out = Vec::new();
    for (product, versions) in &statuses.versions {
        let affected: Vec<String> = versions
            .iter()
            .map(|v| product_id(product, v.text.as_deref()))
            .filter(|id| matches!(statuses.status.get(id), Some((LinkStatus::Affected, _))))
            .collect();
        if affected.is_empty() {
            continue;
        }
        let name = facts
            .products
            .iter()
            .find(|p| p.id.as_str() == product)
            .map_or(product.as_str(), |p| p.name.as_str());
        // The versions are sorted by their key: the first fixed one is the oldest fix.
        let fix = versions.iter().find(|v| {
            matches!(
                statuses.status.get(&product_id(product, v.text.as_deref())),
                Some((LinkStatus::Fixed, _))
            )
        });
        out.push(match fix.and_then(|v| v.text.as_deref()) {
            Some(fixed) => json!({
                "category": "vendor_fix",
                "details": format!("Update {name} to release {fixed}, which fixes the vulnerability."),
                "product_ids": affected,
            }),
            None => json!({
                "category": "none_available",
                "details": format!("No fixed release of {name} is available yet."),
                "product_ids": affected,
            }),
        });
    }
    out
}

fn not_affected_statements(statuses: &Statuses) -> (Vec<Value>, Vec<Value>) {
    let mut by_justification: BTreeMap<Justification, Vec<String>> = BTreeMap::new();
    for (id, (status, justification)) in &statuses.status {
        if let (LinkStatus::NotAffected, Some(j)) = (status, justification) {
            by_justification.entry(*j).or_default().push(id.clone());
        }
    }
    let flags = by_justification
        .iter()
        .map(|(j, ids)| json!({"label": j.as_str(), "product_ids": ids}))
        .collect();
    let threats = by_justification
        .iter()
        .map(|(j, ids)| {
            json!({"category": "impact", "details": j.impact_statement(), "product_ids": ids})
        })
        .collect();
    (flags, threats)
}

fn cvss(vector: &CvssVector, affected: &[String]) -> (Option<Value>, Option<Value>) {
    match crate::cvss::base_score_v31(vector) {
        Some(score) if !affected.is_empty() => (
            Some(json!({
                "cvss_v3": {
                    "version": "3.1",
                    "vectorString": vector.as_str(),
                    "baseScore": score.value(),
                    "baseSeverity": score.severity().as_str(),
                },
                "products": affected,
            })),
            None,
        ),
        Some(_) => (None, None),
        None => (
            None,
            Some(json!({
                "category": "other",
                "title": "CVSS v4.0",
                "text": format!(
                    "The vulnerability's CVSS v4.0 vector is {}. CSAF 2.0 has no score object for \
                     CVSS v4.0, so the vector is stated here and not scored.",
                    vector.as_str()
                ),
            })),
        ),
    }
}

/// Builds the document of `facts`: the next revision of its tracking id (one more than the
/// history's last), a draft or final.
///
/// # Errors
/// `report_not_linked` for a report whose links name no product version; `unprocessable` for
/// links that state two statuses of one product version, or a history that is not 1, 2, 3….
pub fn build(facts: &AdvisoryFacts<'_>) -> Result<Advisory, Refusal> {
    let statuses = statuses(facts)?;
    let mut history = facts.history.to_vec();
    history.sort_by_key(|r| r.version);
    if history
        .iter()
        .enumerate()
        .any(|(i, r)| u32::try_from(i + 1).ok() != Some(r.version))
    {
        return Err(Refusal::new(
            ErrorCode::Internal,
            "the stored revisions of this advisory are not numbered 1, 2, 3…",
        ));
    }
    let version = u32::try_from(history.len() + 1).unwrap_or(u32::MAX);
    let now = facts.now;
    let summary = facts.options.summary.clone().unwrap_or_else(|| {
        if history.is_empty() {
            "Initial release.".into()
        } else {
            "Update.".into()
        }
    });
    let initial_at = history.first().map_or(now, |r| r.date);
    let mut revisions: Vec<Value> = history
        .iter()
        .map(|r| {
            json!({
                "date": format_timestamp(r.date),
                "number": r.version.to_string(),
                "summary": r.summary,
            })
        })
        .collect();
    revisions.push(json!({
        "date": format_timestamp(now),
        "number": version.to_string(),
        "summary": summary,
    }));

    let names: Vec<&str> = statuses
        .versions
        .keys()
        .map(|id| {
            facts
                .products
                .iter()
                .find(|p| p.id.as_str() == id)
                .map_or(id.as_str(), |p| p.name.as_str())
        })
        .collect();
    let title = facts
        .options
        .title
        .clone()
        .unwrap_or_else(|| format!("Vulnerability in {}", names.join(", ")));
    let description = facts.options.description.clone().unwrap_or_else(|| {
        format!(
            "{} has assessed a vulnerability reported as {} in {}: the product status below \
             lists the versions affected, fixed and not affected.",
            facts.config.publisher.name,
            facts.report.id,
            names.join(", ")
        )
    });
    let tracking_id = tracking_id(&facts.report.id, facts.options.vex);
    let path = format!("{}/{}", initial_at.year(), file_name(&tracking_id));

    let mut publisher = json!({
        "category": facts.config.publisher.category.as_str(),
        "name": facts.config.publisher.name,
        "namespace": facts.config.publisher.namespace,
    });
    if let Some(contact) = &facts.config.publisher.contact_details {
        publisher["contact_details"] = json!(contact);
    }
    let document = json!({
        "category": if facts.options.vex { "csaf_vex" } else { "csaf_security_advisory" },
        "csaf_version": "2.0",
        "distribution": {
            "tlp": {"label": "WHITE", "url": "https://www.first.org/tlp/"},
        },
        "lang": "en",
        "notes": [{"category": "summary", "title": "Summary", "text": description}],
        "publisher": publisher,
        "references": [{
            "category": "self",
            "summary": "This advisory, as its provider serves it",
            "url": format!("{}{path}", facts.config.directory_url()),
        }],
        "title": title,
        "tracking": {
            "current_release_date": format_timestamp(now),
            "generator": {
                "date": format_timestamp(now),
                "engine": {"name": "Touchmark", "version": facts.generator_version},
            },
            "id": tracking_id,
            "initial_release_date": format_timestamp(initial_at),
            "revision_history": revisions,
            "status": facts.status.as_str(),
            "version": version.to_string(),
        },
    });

    let affected = ids_with(&statuses, |s| s == LinkStatus::Affected);
    let fixed = ids_with(&statuses, |s| s == LinkStatus::Fixed);
    let not_affected = ids_with(&statuses, |s| s == LinkStatus::NotAffected);
    let mut product_status = serde_json::Map::new();
    for (key, ids) in [
        ("known_affected", &affected),
        ("fixed", &fixed),
        ("known_not_affected", &not_affected),
    ] {
        if !ids.is_empty() {
            product_status.insert(key.into(), json!(ids));
        }
    }
    let mut notes =
        vec![json!({"category": "description", "title": "Description", "text": description})];
    let mut vulnerability = json!({
        "ids": [{
            "system_name": format!("{} vulnerability reports", facts.config.publisher.name),
            "text": facts.report.id,
        }],
        "product_status": product_status,
    });
    if let Some(cve) = &facts.options.cve {
        vulnerability["cve"] = json!(cve.as_str());
    }
    if let Some(vector) = &facts.report.content.cvss {
        let (score, note) = cvss(vector, &affected);
        if let Some(score) = score {
            vulnerability["scores"] = json!([score]);
        }
        notes.extend(note);
    }
    vulnerability["notes"] = json!(notes);
    let remediations = remediations(facts, &statuses);
    if !remediations.is_empty() {
        vulnerability["remediations"] = json!(remediations);
    }
    let (flags, threats) = not_affected_statements(&statuses);
    if !flags.is_empty() {
        vulnerability["flags"] = json!(flags);
        vulnerability["threats"] = json!(threats);
    }

    let whole = json!({
        "document": document,
        "product_tree": product_tree(facts, &statuses)?,
        "vulnerabilities": [vulnerability],
    });
    let mut bytes = serde_json::to_vec_pretty(&whole)
        .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))?;
    bytes.push(b'\n');
    Ok(Advisory {
        report: facts.report.id.clone(),
        sha256: Sha256Hash::of(&bytes),
        tracking_id,
        version,
        vex: facts.options.vex,
        summary,
        initial_at,
        published_at: now,
        document: bytes,
    })
}

/// `provider-metadata.json` (§7.1.7): a CSAF provider whose TLP:WHITE advisories are in one
/// directory, updated at `last_updated` (the newest publication, or `now` when there is none).
///
/// # Errors
/// Never for a configuration; a message otherwise.
pub fn provider_metadata(
    config: &CsafConfig,
    last_updated: OffsetDateTime,
) -> Result<Vec<u8>, String> {
    let mut publisher = json!({
        "category": config.publisher.category.as_str(),
        "name": config.publisher.name,
        "namespace": config.publisher.namespace,
    });
    if let Some(contact) = &config.publisher.contact_details {
        publisher["contact_details"] = json!(contact);
    }
    let metadata = json!({
        "canonical_url": config.canonical_url(),
        "distributions": [{"directory_url": config.directory_url()}],
        "last_updated": format_timestamp(last_updated),
        "list_on_CSAF_aggregators": config.list_on_aggregators,
        "metadata_version": "2.0",
        "mirror_on_CSAF_aggregators": config.mirror_on_aggregators,
        "publisher": publisher,
        "role": "csaf_provider",
    });
    let mut bytes = serde_json::to_vec_pretty(&metadata).map_err(|e| e.to_string())?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// `index.txt` (§7.1.12): the path of every advisory under the directory, one a line.
pub fn index_txt(latest: &[Advisory]) -> String {
    let mut paths: Vec<String> = latest.iter().map(Advisory::path).collect();
    paths.sort();
    paths.into_iter().map(|p| p + "\n").collect()
}

/// `changes.csv` (§7.1.13): each advisory's path and the time of its last change, newest first,
/// both quoted.
pub fn changes_csv(latest: &[Advisory]) -> String {
    let mut rows: Vec<(OffsetDateTime, String)> =
        latest.iter().map(|a| (a.published_at, a.path())).collect();
    rows.sort_by(|a, b| b.cmp(a));
    rows.into_iter()
        .map(|(at, path)| format!("\"{path}\",\"{}\"\n", format_timestamp(at)))
        .collect()
}

impl fmt::Display for Cve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn file_names_follow_section_5_1() {
        assert_eq!(file_name("vr-00ab"), "vr-00ab.json");
        assert_eq!(
            file_name("Example Company - 2019-YH3234"),
            "example_company_-_2019-yh3234.json"
        );
        assert_eq!(file_name("RHBA-2019:0024"), "rhba-2019_0024.json");
        assert_eq!(file_name("a..b//c+1"), "a_b_c+1.json");
        assert_eq!(tracking_id("vr-1", true), "vr-1-vex");
    }

    #[test]
    fn cve_ids() {
        assert!(Cve::parse("cve", "CVE-2026-12345").is_ok());
        assert!(Cve::parse("cve", "CVE-2026-1234").is_ok());
        for bad in [
            "CVE-26-1234",
            "CVE-2026-123",
            "cve-2026-1234",
            "CVE-2026-12a4",
            "",
        ] {
            assert!(Cve::parse("cve", bad).is_err(), "{bad}");
        }
    }
}
