//! `unit history` and `report`: what the stored test records say (design.md §9).

use clap::Subcommand;
use touchmark_core::oversight::{OrderReport, UnitHistory};

use crate::args::ApiArgs;
use crate::commands::admin::client;
use crate::output::{self, Table, or_dash};

/// `report` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// An order's report: quota used and left, first-pass and final yield, retest rate,
    /// attempts per hour, failure Paretos by step and by measurement, each numeric
    /// measurement's statistics (count, mean, standard deviation, extremes, histogram with
    /// --json, Cp, Cpk), and refusals by code.
    Order {
        /// The order id.
        id: String,
        /// From this instant, inclusive (RFC 3339, e.g. 2026-03-01T08:00:00Z).
        #[arg(long)]
        from: Option<String>,
        /// Until this instant, exclusive (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn opt(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| String::from("-"), |v| format!("{v:.digits$}"))
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| String::from("-"), |v| format!("{:.1}%", v * 100.0))
}

/// Prints a unit's history, oldest first.
///
/// # Errors
/// When the server refuses or cannot be reached.
pub async fn history(serial: &str, api: &ApiArgs) -> anyhow::Result<()> {
    let history = client(api)?.unit_history(serial).await?;
    if api.json {
        return output::json(&history);
    }
    print_history(&history);
    Ok(())
}

fn print_history(history: &UnitHistory) {
    output::fields(&[
        ("serial", history.serial.clone()),
        ("status", history.status.join(", ")),
        ("test attempts", history.test_attempts.to_string()),
        ("retests", history.retests.to_string()),
    ]);
    let mut table = Table::new(&["TIME", "WHAT", "ORDER", "STATION", "RESULT", "DETAIL"]);
    for e in &history.entries {
        let (result, detail) = match (&e.attempt, &e.cert_sha256) {
            (Some(a), _) => {
                let failed: Vec<String> = a
                    .steps
                    .iter()
                    .flat_map(|s| {
                        let step = (s.outcome != "pass" && s.outcome != "skip")
                            .then(|| format!("{} {}", s.name, s.outcome));
                        step.into_iter().chain(
                            s.measurements
                                .iter()
                                .filter(|m| m.outcome == "fail")
                                .map(|m| {
                                    let value = m
                                        .value
                                        .map(|v| v.to_string())
                                        .or_else(|| m.text.clone())
                                        .unwrap_or_default();
                                    format!("{}/{}={value}", s.name, m.name)
                                }),
                        )
                    })
                    .collect();
                let steps = a.steps.len();
                let measured: usize = a.steps.iter().map(|s| s.measurements.len()).sum();
                let detail = if failed.is_empty() {
                    format!("{steps} steps, {measured} measurements ({})", a.format)
                } else {
                    format!("failed: {}", failed.join(", "))
                };
                (a.verdict.clone(), detail)
            }
            (None, Some(cert)) => (String::from("issued"), format!("sha256 {cert}")),
            (None, None) => (String::from("-"), String::new()),
        };
        table.row(vec![
            e.at.clone(),
            e.kind.clone(),
            e.order.clone(),
            or_dash(e.station.as_deref()),
            result,
            detail,
        ]);
    }
    table.print();
}

/// Runs a `report` subcommand.
///
/// # Errors
/// When the server refuses or cannot be reached.
pub async fn report(command: ReportCommand) -> anyhow::Result<()> {
    let ReportCommand::Order {
        id,
        from,
        until,
        api,
    } = command;
    let report = client(&api)?
        .order_report(&id, from.as_deref(), until.as_deref())
        .await?;
    if api.json {
        return output::json(&report);
    }
    print_report(&report);
    Ok(())
}

fn print_report(r: &OrderReport) {
    output::fields(&[
        ("order", r.order.clone()),
        ("product", r.product.clone()),
        ("factory", r.factory.clone()),
        (
            "window",
            format!(
                "{} .. {}",
                r.from.as_deref().unwrap_or("start"),
                r.until.as_deref().unwrap_or("now")
            ),
        ),
        (
            "quota",
            format!(
                "{} used, {} left of {}",
                r.quota_used, r.quota_left, r.quota
            ),
        ),
        ("test attempts", r.attempts.to_string()),
        ("failed tests (all time)", r.failed_tests.to_string()),
        ("units tested", r.units.to_string()),
        ("first-pass yield", percent(r.first_pass_yield)),
        ("final yield", percent(r.final_yield)),
        ("retest rate", percent(r.retest_rate)),
    ]);
    if !r.units_per_hour.is_empty() {
        println!();
        let mut table = Table::new(&["HOUR", "ATTEMPTS", "PASSED"]);
        for h in &r.units_per_hour {
            table.row(vec![
                h.hour.clone(),
                h.attempts.to_string(),
                h.passed.to_string(),
            ]);
        }
        table.print();
    }
    for (title, bars) in [
        ("FAILED STEP", &r.failures_by_step),
        ("FAILED MEASUREMENT", &r.failures_by_measurement),
    ] {
        if bars.is_empty() {
            continue;
        }
        println!();
        let mut table = Table::new(&[title, "FAILURES", "SHARE"]);
        for b in bars {
            table.row(vec![
                b.name.clone(),
                b.failures.to_string(),
                percent(Some(b.share)),
            ]);
        }
        table.print();
    }
    if !r.measurements.is_empty() {
        println!();
        let mut table = Table::new(&[
            "MEASUREMENT",
            "UNIT",
            "N",
            "MEAN",
            "STDDEV",
            "MIN",
            "MAX",
            "LOW",
            "HIGH",
            "CP",
            "CPK",
            "PP",
            "PPK",
        ]);
        for m in &r.measurements {
            table.row(vec![
                format!("{}/{}", m.step, m.name),
                or_dash(m.unit.as_deref()),
                m.count.to_string(),
                format!("{:.4}", m.mean),
                opt(m.stddev, 4),
                m.min.to_string(),
                m.max.to_string(),
                opt(m.low, 4),
                opt(m.high, 4),
                opt(m.cp, 3),
                opt(m.cpk, 3),
                opt(m.pp, 3),
                opt(m.ppk, 3),
            ]);
        }
        table.print();
    }
    if !r.refusals.is_empty() {
        println!();
        let mut table = Table::new(&["REFUSAL", "COUNT"]);
        for (code, n) in &r.refusals {
            table.row(vec![code.clone(), n.to_string()]);
        }
        table.print();
    }
}

/// `alert` subcommands.
#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// List alerts, newest first: open and acknowledged ones, or all with --all.
    List {
        /// Resolved alerts too.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show an alert with its evidence.
    Show {
        /// The alert id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Acknowledge an open alert (logged).
    Ack {
        /// The alert id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Resolve an alert (logged).
    Resolve {
        /// The alert id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// `webhook` subcommands.
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Register an endpoint that receives alerts, signed in the Standard Webhooks scheme
    /// (`webhook-id`, `webhook-timestamp`, `webhook-signature` headers), at least once, retried
    /// with exponential backoff.
    Add {
        /// Where deliveries go (http:// or https://).
        #[arg(long)]
        url: String,
        /// A file holding the secret, `whsec_<base64>` of 24 to 64 bytes.
        #[arg(long)]
        secret_file: std::path::PathBuf,
        /// Only alerts of this kind (repeatable): clone_suspect, beyond_quota, outside_window,
        /// station_standing, station_rate, fpy_low, measurement_drift. All by default.
        #[arg(long = "kind")]
        kinds: Vec<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List the webhooks.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn print_alerts(alerts: &[touchmark_core::oversight::AlertBody]) {
    let mut table = Table::new(&[
        "ID", "KIND", "STATE", "ORDER", "STATION", "RAISED", "EVIDENCE",
    ]);
    for a in alerts {
        let evidence: Vec<String> = a.evidence.iter().map(|(k, v)| format!("{k}={v}")).collect();
        table.row(vec![
            a.id.clone(),
            a.kind.clone(),
            a.state.clone(),
            or_dash(a.order.as_deref()),
            or_dash(a.station.as_deref()),
            a.raised_at.clone(),
            evidence.join(" "),
        ]);
    }
    table.print();
}

/// Runs an `alert` subcommand.
///
/// # Errors
/// When the server refuses or cannot be reached.
pub async fn alert(command: AlertCommand) -> anyhow::Result<()> {
    let (api, alerts) = match command {
        AlertCommand::List { all, api } => {
            let alerts = client(&api)?.alerts(all).await?;
            (api, alerts)
        }
        AlertCommand::Show { id, api } => {
            let alert = client(&api)?.alert(&id).await?;
            (api, vec![alert])
        }
        AlertCommand::Ack { id, api } => {
            let alert = client(&api)?.alert_action(&id, false).await?;
            (api, vec![alert])
        }
        AlertCommand::Resolve { id, api } => {
            let alert = client(&api)?.alert_action(&id, true).await?;
            (api, vec![alert])
        }
    };
    if api.json {
        return output::json(&alerts);
    }
    print_alerts(&alerts);
    Ok(())
}

/// Runs a `webhook` subcommand.
///
/// # Errors
/// When the secret file cannot be read, or the server refuses or cannot be reached.
pub async fn webhook(command: WebhookCommand) -> anyhow::Result<()> {
    let (api, hooks) = match command {
        WebhookCommand::Add {
            url,
            secret_file,
            kinds,
            api,
        } => {
            let secret = std::fs::read_to_string(&secret_file).map_err(|e| {
                anyhow::anyhow!("cannot read the secret {}: {e}", secret_file.display())
            })?;
            let hook = client(&api)?
                .create_webhook(&touchmark_core::oversight::CreateWebhook {
                    url,
                    secret: secret.trim().to_owned(),
                    kinds,
                })
                .await?;
            (api, vec![hook])
        }
        WebhookCommand::List { api } => {
            let hooks = client(&api)?.webhooks().await?;
            (api, hooks)
        }
    };
    if api.json {
        return output::json(&hooks);
    }
    let mut table = Table::new(&["ID", "URL", "KINDS", "CREATED"]);
    for h in hooks {
        let kinds = if h.kinds.is_empty() {
            String::from("all")
        } else {
            h.kinds.join(",")
        };
        table.row(vec![h.id, h.url, kinds, h.created_at]);
    }
    table.print();
    Ok(())
}
