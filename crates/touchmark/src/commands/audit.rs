//! `touchmark audit`: verify the audit log offline with the log's public key alone, or export
//! it as a bundle that can be verified later without the server (design.md §6). The work is
//! `touchmark_audit`'s; this parses the arguments, draws the progress bars and prints.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use touchmark_audit::{Audit, Progress, Report, Source, Step};

use crate::args::RootCaArgs;
use crate::output::{self, Table, fields};

/// Arguments of `audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// `audit` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Verify the log: checkpoint signature, every entry and tile, consistency with the last
    /// verified checkpoint, and the events' story per order. Exits non-zero on any violation.
    Verify(VerifyArgs),
    /// Download the log (checkpoint, tiles, entry bundles, verifier key) into a directory
    /// that `audit verify DIR` accepts offline.
    Export(ExportArgs),
}

/// Arguments of `audit verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The log: a server's `https://` base URL (`/log/...` is appended), or a directory
    /// written by `audit export`.
    pub source: String,
    /// The log's verifier key (`<origin>+<key id>+<base64>`), or `@FILE` to read it from a
    /// file. Obtain it out of band: never from the server being audited.
    #[arg(long, env = "TOUCHMARK_LOG_KEY")]
    pub key: String,
    /// Where the last verified checkpoint is kept, to check that the log only grows.
    #[arg(long, default_value = "touchmark-audit.state")]
    pub state: PathBuf,
    /// Where downloaded tiles are kept between runs [default: <state>.d].
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Which root CA to trust for an `https://` source.
    #[command(flatten)]
    pub trust: RootCaArgs,
    /// How to print.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `audit export`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// The directory to write (it must not exist, or be empty).
    pub dir: PathBuf,
    /// The server's URL.
    #[arg(
        long,
        env = "TOUCHMARK_SERVER",
        default_value = "https://localhost:8443"
    )]
    pub server: String,
    /// Which root CA to trust for an `https://` source.
    #[command(flatten)]
    pub trust: RootCaArgs,
    /// How to print.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// How an audit command prints.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs an `audit` subcommand.
///
/// # Errors
/// On any verification failure or violation (the message names the entry or tile), or when
/// the log cannot be read.
pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    match args.command {
        AuditCommand::Verify(args) => {
            let audit = Audit {
                source: Source::new(&args.source, args.trust.path()),
                key: touchmark_audit::verifier_key(&args.key).context("--key")?,
                state: args.state,
                cache: args.cache,
            };
            let bars = Bar::shared(args.output.quiet || args.output.json);
            let report = touchmark_audit::verify(&audit, bars).await?;
            if args.output.json {
                output::json(&report)?;
            } else {
                print(&report);
            }
            Ok(report.verdict()?)
        }
        AuditCommand::Export(args) => {
            let bars = Bar::shared(args.output.quiet || args.output.json);
            let exported =
                touchmark_audit::export(&args.dir, &args.server, &args.trust.path(), bars).await?;
            if args.output.json {
                return output::json(&exported);
            }
            println!(
                "exported {} at size {} ({} tiles and bundles) to {}",
                exported.origin, exported.size, exported.files, exported.dir
            );
            println!(
                "verify it offline with: touchmark audit verify {} --key <the log's verifier key, \
                 obtained from a trusted source>",
                exported.dir
            );
            Ok(())
        }
    }
}

/// One progress bar on stderr, reused for each step; hidden with `--quiet` or `--json`.
struct Bar(ProgressBar);

impl Bar {
    fn shared(hidden: bool) -> Arc<dyn Progress> {
        let bar = if hidden {
            ProgressBar::hidden()
        } else {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        };
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix:>9} [{bar:30}] {human_pos}/{human_len} {per_sec} {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Arc::new(Self(bar))
    }
}

impl Progress for Bar {
    fn start(&self, step: Step, total: u64) {
        self.0.reset();
        self.0.set_length(total);
        self.0.set_prefix(step.as_str());
    }

    fn advance(&self, done: u64) {
        self.0.inc(done);
    }

    fn finish(&self, _: Step) {
        self.0.finish_and_clear();
    }
}

/// Prints the report as tables.
fn print(report: &Report) {
    let previous = match &report.previous {
        None => "none (first run: nothing to compare)".to_owned(),
        Some(p) => format!("size {} root {}", p.size, p.root),
    };
    let tree = if report.tree_verified() {
        "verified"
    } else {
        "NOT VERIFIED"
    };
    fields(&[
        ("log", report.origin.clone()),
        ("size", report.checkpoint.size.to_string()),
        ("root", report.checkpoint.root.clone()),
        ("previous", previous),
        ("tree", tree.to_owned()),
        ("events", report.events.to_string()),
    ]);
    println!();
    let mut orders = Table::new(&["ORDER", "QUOTA", "ISSUED", "FAILED", "REVOKED", "REFUSED"]);
    for (order, r) in &report.orders {
        let quota: Vec<String> = r.quota_history.iter().map(u64::to_string).collect();
        let refused: Vec<String> = r
            .refusals
            .iter()
            .map(|(code, n)| format!("{code}={n}"))
            .collect();
        let or_dash = |v: Vec<String>, sep: &str| {
            if v.is_empty() {
                "-".into()
            } else {
                v.join(sep)
            }
        };
        orders.row(vec![
            order.clone(),
            or_dash(quota, " → "),
            r.issued.to_string(),
            r.failed_tests.to_string(),
            r.revoked.to_string(),
            or_dash(refused, ", "),
        ]);
    }
    orders.print();
    if !report.refusal_floods.is_empty() {
        println!();
        let mut floods = Table::new(&["STATION", "FLOOD ALERTS", "REFUSALS COUNTED, NOT LOGGED"]);
        for (station, r) in &report.refusal_floods {
            let counted: Vec<String> = r
                .limited_refusals
                .iter()
                .map(|(code, n)| format!("{code}={n}"))
                .collect();
            floods.row(vec![
                station.clone(),
                r.floods.to_string(),
                counted.join(", "),
            ]);
        }
        floods.print();
    }
    if !report.keys.is_empty() {
        println!();
        let mut keys = Table::new(&[
            "KEY",
            "ALGORITHM",
            "STORE",
            "PUBLIC KEY SHA-256",
            "MADE",
            "ENTRY",
            "CA INSTALLED",
        ]);
        for (name, k) in &report.keys {
            keys.row(vec![
                name.clone(),
                k.algorithm.clone(),
                k.store.clone(),
                k.public_key_sha256.to_string(),
                k.generated_at.clone(),
                k.generated_at_index.to_string(),
                k.ca_installed_at_index
                    .map_or_else(|| "-".to_owned(), |i| format!("entry {i}")),
            ]);
        }
        keys.print();
    }
    println!();
    if report.suspects.is_empty() {
        println!("clone suspects: none");
    } else {
        println!("clone suspects: {}", report.suspects.len());
        let mut table = Table::new(&["ENTRY", "REASON", "ORDER", "STATION", "SERIAL"]);
        for s in &report.suspects {
            table.row(vec![
                s.index.to_string(),
                s.reason.as_str().to_owned(),
                s.order.to_string(),
                s.station.to_string(),
                s.serial
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), ToString::to_string),
            ]);
        }
        table.print();
    }
    println!();
    if report.violations.is_empty() {
        println!("violations: none");
        return;
    }
    println!("violations: {}", report.violations.len());
    let mut table = Table::new(&["ENTRY", "KIND", "WHAT"]);
    for v in &report.violations {
        table.row(vec![
            v.index.map_or_else(|| "-".to_owned(), |i| i.to_string()),
            v.kind.as_str().to_owned(),
            v.message.clone(),
        ]);
    }
    table.print();
}
