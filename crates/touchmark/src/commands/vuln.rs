//! `vuln`: vulnerability reports from the public intake (issue 18, `docs/vulnerabilities.md`):
//! list them with their CRA deadlines, show one, move it through triage, classify it under the
//! CRA, record the notifications submitted, link it to products, releases and components with
//! the status each link states, and write its CSAF 2.0 advisory.

use anyhow::Context;
use clap::Subcommand;
use touchmark_core::api::{
    ChangeReportState, ClassifyReport, LinkReport, RecordSubmission, ReportBody, WriteAdvisory,
};

use crate::args::ApiArgs;
use crate::commands::admin::client;
use crate::output::{self, Table, fields, or_dash};

/// `vuln` subcommands.
#[derive(Debug, Subcommand)]
pub enum VulnCommand {
    /// List reports, newest first, with their state and CRA deadlines; with --due, only those
    /// with a deadline approaching or overdue.
    List {
        /// Only reports with a CRA deadline approaching or overdue now.
        #[arg(long)]
        due: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show a report: what the researcher sent (as text, exactly), its state, CRA deadlines
    /// and links. Encrypted details are shown armored: `age -d -i IDENTITY` opens them.
    Show {
        /// The report id (vr-…).
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Move a report to another state (logged): received → triaged → confirmed | rejected;
    /// confirmed → fixed → disclosed.
    Triage {
        /// The report id.
        id: String,
        /// The new state: triaged, confirmed, rejected, fixed or disclosed.
        state: String,
        /// With `fixed`: when the corrective measure became available (RFC 3339), if before
        /// now. The vulnerability's final report is due 14 days after it.
        #[arg(long)]
        corrective_at: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Classify a report under the CRA, which starts its clocks (logged): an early warning 24 h
    /// after awareness, a notification at 72 h, a final report later.
    Classify {
        /// The report id.
        id: String,
        /// exploited_vulnerability or severe_incident.
        class: String,
        /// When you became aware of it (RFC 3339) [default: now].
        #[arg(long)]
        aware_at: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Record that a CRA notification was submitted (logged).
    Submitted {
        /// The report id.
        id: String,
        /// early_warning, notification or final_report.
        deadline: String,
        /// When it was submitted (RFC 3339) [default: now].
        #[arg(long)]
        at: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Link a report to a product, optionally one of its releases and an SBOM component
    /// (logged).
    Link {
        /// The report id.
        id: String,
        /// The product id.
        #[arg(long)]
        product: String,
        /// A release of the product, by version (1.2.0 or 1.2.0+7).
        #[arg(long)]
        release: Option<String>,
        /// An SBOM component, as a package URL (pkg:cargo/rustls@0.23.5).
        #[arg(long)]
        purl: Option<String>,
        /// The component's affected versions, in vers (vers:cargo/>=0.23.0|<0.23.6).
        #[arg(long, requires = "purl")]
        range: Option<String>,
        /// What the link states: affected (its units count in `affected`), fixed (the release
        /// holds the fix), or not-affected (with --justification). Advisories list each.
        #[arg(long, default_value = "affected",
              value_parser = ["affected", "fixed", "not-affected", "not_affected"])]
        status: String,
        /// Why a not-affected product or release is not (a CSAF VEX flag):
        /// component_not_present, vulnerable_code_not_present,
        /// vulnerable_code_not_in_execute_path,
        /// vulnerable_code_cannot_be_controlled_by_adversary or
        /// inline_mitigations_already_exist.
        #[arg(long)]
        justification: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Write a report's CSAF 2.0 advisory: a draft (stored and logged nowhere) to review, or
    /// with --publish its next revision, logged and served under /.well-known/csaf/. The
    /// reporter's description is never copied into it: give the public text with --title and
    /// --description.
    Advisory {
        /// The report id.
        id: String,
        /// Where to write the document [default: standard output].
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Publish it as the next revision (needs `[csaf]` in touchmark.toml).
        #[arg(long)]
        publish: bool,
        /// A VEX document (the csaf_vex profile), for not-affected statements.
        #[arg(long)]
        vex: bool,
        /// The vulnerability's CVE id (CVE-2026-12345).
        #[arg(long)]
        cve: Option<String>,
        /// The document's title [default: "Vulnerability in" and the products].
        #[arg(long)]
        title: Option<String>,
        /// The vulnerability's public description.
        #[arg(long)]
        description: Option<String>,
        /// This revision's summary in the revision history [default: "Initial release." for
        /// the first, "Update." after].
        #[arg(long)]
        summary: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The units a report affects, from the serial → release lineage: each unit whose last
    /// received release (at provisioning or by a field update) a link names, or of a product
    /// linked without a release; with counts per order, factory and release. --json lists the
    /// serials.
    Affected {
        /// The report id.
        id: String,
        /// List at most this many units (the counts are of all of them) [default: every
        /// unit, read from the server a page of 10,000 at a time].
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn deadlines(r: &ReportBody) -> String {
    r.deadlines
        .iter()
        .map(|d| {
            format!(
                "{} {} {}",
                d.deadline,
                d.status,
                d.due_at.as_deref().unwrap_or("-")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn print_list(reports: &[ReportBody]) {
    let mut table = Table::new(&["ID", "STATE", "PRODUCT", "CLASS", "RECEIVED", "DEADLINES"]);
    for r in reports {
        table.row(vec![
            r.id.clone(),
            r.state.clone(),
            or_dash(r.product.as_deref()),
            or_dash(r.class.as_deref()),
            r.received_at.clone(),
            deadlines(r),
        ]);
    }
    table.print();
}

fn print_report(r: &ReportBody) {
    output::fields(&[
        ("id", r.id.clone()),
        ("state", r.state.clone()),
        ("product", or_dash(r.product.as_deref())),
        ("version", or_dash(r.version.as_deref())),
        ("cvss", or_dash(r.cvss.as_deref())),
        ("contact", or_dash(r.contact.as_deref())),
        ("class", or_dash(r.class.as_deref())),
        ("aware at", or_dash(r.aware_at.as_deref())),
        ("corrective measure", or_dash(r.corrective_at.as_deref())),
        ("received", r.received_at.clone()),
        ("content sha256", r.content_sha256.clone()),
    ]);
    if !r.deadlines.is_empty() {
        println!();
        let mut table = Table::new(&["DEADLINE", "DUE", "STATUS", "SUBMITTED"]);
        for d in &r.deadlines {
            table.row(vec![
                d.deadline.clone(),
                or_dash(d.due_at.as_deref()),
                d.status.clone(),
                or_dash(d.submitted_at.as_deref()),
            ]);
        }
        table.print();
    }
    if !r.links.is_empty() {
        println!();
        let mut table = Table::new(&[
            "PRODUCT",
            "RELEASE",
            "VERSION",
            "PURL",
            "RANGE",
            "STATUS",
            "JUSTIFICATION",
        ]);
        for l in &r.links {
            table.row(vec![
                l.product.clone(),
                or_dash(l.release.as_deref()),
                or_dash(l.version.as_deref()),
                or_dash(l.purl.as_deref()),
                or_dash(l.range.as_deref()),
                l.status.clone(),
                or_dash(l.justification.as_deref()),
            ]);
        }
        table.print();
    }
    // The researcher's text, printed as text after the fields: never interpreted.
    if let Some(d) = &r.description {
        println!("\ndescription:\n{d}");
    }
    if let Some(e) = &r.encrypted {
        println!("\nencrypted (age -d -i IDENTITY):\n{e}");
    }
}

/// Runs a `vuln` subcommand.
///
/// # Errors
/// When the server refuses or cannot be reached.
pub async fn run(command: VulnCommand) -> anyhow::Result<()> {
    let (api, report) = match command {
        VulnCommand::List { due, api } => {
            let reports = client(&api)?.vuln_reports(due).await?;
            if api.json {
                return output::json(&reports);
            }
            print_list(&reports);
            return Ok(());
        }
        VulnCommand::Link {
            id,
            product,
            release,
            purl,
            range,
            status,
            justification,
            api,
        } => {
            let request = LinkReport {
                product,
                release,
                purl,
                range,
                status: Some(status.replace('-', "_")),
                justification,
            };
            let link = client(&api)?.vuln_link(&id, &request).await?;
            if api.json {
                return output::json(&link);
            }
            println!(
                "linked {id} to product {}{}{} ({}{})",
                link.product,
                link.version
                    .map(|v| format!(", release {v}"))
                    .unwrap_or_default(),
                link.purl
                    .map(|p| format!(", component {p}"))
                    .unwrap_or_default(),
                link.status,
                link.justification
                    .map(|j| format!(": {j}"))
                    .unwrap_or_default()
            );
            return Ok(());
        }
        VulnCommand::Advisory {
            id,
            out,
            publish,
            vex,
            cve,
            title,
            description,
            summary,
            api,
        } => {
            let request = WriteAdvisory {
                publish,
                vex,
                cve,
                title,
                description,
                summary,
            };
            let (document, published) = client(&api)?.vuln_advisory(&id, &request).await?;
            match &out {
                Some(path) => std::fs::write(path, &document)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => {
                    std::io::Write::write_all(&mut std::io::stdout(), &document)?;
                    return Ok(());
                }
            }
            let what = if published { "published" } else { "draft" };
            println!(
                "{what} advisory of {id} written to {}",
                out.as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            );
            return Ok(());
        }
        VulnCommand::Affected { id, limit, api } => {
            let client = client(&api)?;
            if api.json {
                return output::json(&client.vuln_affected_all(&id, limit).await?);
            }
            // The text lists the counts, and the units only when --limit asks for them.
            let affected = match limit {
                Some(_) => client.vuln_affected_all(&id, limit).await?,
                None => client.vuln_affected(&id, Some(1), None).await?,
            };
            print_affected(&affected, limit.is_some());
            return Ok(());
        }
        VulnCommand::Show { id, api } => {
            let report = client(&api)?.vuln_report(&id).await?;
            (api, report)
        }
        VulnCommand::Triage {
            id,
            state,
            corrective_at,
            api,
        } => {
            let body = ChangeReportState {
                state,
                corrective_at,
            };
            let report = client(&api)?.vuln_change(&id, "state", &body).await?;
            (api, report)
        }
        VulnCommand::Classify {
            id,
            class,
            aware_at,
            api,
        } => {
            let body = ClassifyReport { class, aware_at };
            let report = client(&api)?
                .vuln_change(&id, "classification", &body)
                .await?;
            (api, report)
        }
        VulnCommand::Submitted {
            id,
            deadline,
            at,
            api,
        } => {
            let body = RecordSubmission {
                deadline,
                submitted_at: at,
            };
            let report = client(&api)?.vuln_change(&id, "submissions", &body).await?;
            (api, report)
        }
    };
    if api.json {
        return output::json(&report);
    }
    print_report(&report);
    Ok(())
}

fn print_affected(a: &touchmark_core::api::AffectedBody, units: bool) {
    fields(&[
        ("report", a.report.clone()),
        ("units affected", a.total.to_string()),
        ("of them revoked", a.revoked.to_string()),
        (
            "unresolved links",
            format!(
                "{} (SBOM components no release holds in the linked range)",
                a.unresolved_links
            ),
        ),
    ]);
    for (title, counts) in [
        ("ORDER", &a.by_order),
        ("FACTORY", &a.by_factory),
        ("RELEASE", &a.by_release),
    ] {
        let mut table = Table::new(&[title, "UNITS"]);
        for (key, n) in counts {
            table.row(vec![key.clone(), n.to_string()]);
        }
        table.print();
    }
    if units {
        let mut table = Table::new(&["SERIAL", "ORDER", "FACTORY", "RELEASE", "REVOKED"]);
        for u in &a.units {
            table.row(vec![
                u.serial.clone(),
                u.order.clone(),
                u.factory.clone(),
                u.version.clone().unwrap_or_else(|| "*".into()),
                if u.revoked { "yes" } else { "no" }.into(),
            ]);
        }
        table.print();
    }
}
