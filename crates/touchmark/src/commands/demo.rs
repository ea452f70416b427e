//! `touchmark demo`: design.md §12 on one machine (`touchmark_demo` runs it), told on the terminal
//! with live progress, then the summary; the server keeps running until Ctrl-C unless `--exit`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::bail;
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget};
use touchmark_authority::Installation;
use touchmark_demo::{DemoKeys, ORDER, Options, QUOTA};
use touchmark_pki::Passphrase;

use crate::database::Database;
use crate::output::{self, Table};
use crate::{config, secrets, shutdown};

/// Arguments of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The data directory [default: ./touchmark-demo, created fresh].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Address to listen on [default: a free port on 127.0.0.1].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Run the scenario and exit: 0 only when every outcome is as expected.
    #[arg(long)]
    pub exit: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Make every key of the demo's installation inside a PKCS#11 token, as `init` does.
    #[command(flatten)]
    pub pkcs11: crate::commands::init::Pkcs11Args,
}

fn passphrase(dir: &Path) -> anyhow::Result<Passphrase> {
    if std::env::var_os("TOUCHMARK_KEY_PASSPHRASE").is_some()
        || std::env::var_os("TOUCHMARK_KEY_PASSPHRASE_FILE").is_some()
    {
        return secrets::passphrase();
    }
    // A demo on a fresh machine needs no set-up: a random passphrase, kept beside the data.
    let secret = touchmark_authority::secrets::random_secret("demo-");
    secrets::write_secret_file(&dir.join("passphrase.txt"), &secret)?;
    Ok(Passphrase::new(secret)?)
}

/// The story on stdout and a progress bar per line on stderr, or nothing with `--json`.
struct Story {
    quiet: bool,
    bars: MultiProgress,
    /// Each line's bar, kept until the lines are done: a bar dropped when its line ends would
    /// leave the `MultiProgress` before its last units are drawn.
    lines: std::sync::Mutex<Vec<ProgressBar>>,
}

impl touchmark_demo::Progress for Story {
    fn say(&self, line: &str) {
        if !self.quiet {
            println!("{line}");
        }
    }

    fn line(&self, name: &str, units: u64) -> Arc<dyn Fn(String) + Send + Sync> {
        let bar = self.bars.add(output::bar(units, name));
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(bar.clone());
        output::on_unit(bar)
    }

    fn lines_done(&self) {
        // Drawn once more whatever the rate limit, where they stopped (each line's total), and
        // left on the screen above the summary.
        for bar in self
            .lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            bar.abandon();
        }
    }
}

/// Runs `touchmark demo`.
///
/// # Errors
/// When the demo cannot be set up; with `--exit`, also when an outcome is not as expected.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    // The token first: one that cannot be reached, or holds keys already, fails before the
    // data directory is made.
    let token = match args.pkcs11.config() {
        Some(config) => {
            let keys = crate::commands::init::token_for_init(&config)?;
            Some((config, keys))
        }
        None => None,
    };
    let dir = touchmark_demo::prepare(args.data)?;
    let mut file = config::initial_file(&Database::for_dir(&dir, None));
    let keys = match token {
        Some((token_config, keys)) => {
            file.push_str(&config::pkcs11_section(&token_config));
            DemoKeys::Provider(Arc::new(keys))
        }
        None => DemoKeys::Files(passphrase(&dir)?),
    };
    std::fs::write(dir.join(config::FILE), file)?;
    let story = Story {
        quiet: args.json,
        bars: MultiProgress::new(),
        lines: std::sync::Mutex::new(Vec::new()),
    };
    if args.json {
        story.bars.set_draw_target(ProgressDrawTarget::hidden());
    }
    let options = Options {
        dir: dir.clone(),
        keys,
        listen: args
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
    };
    let mut demo = touchmark_demo::run(&options, &story).await?;
    secrets::write_secret_file(&dir.join("admin.token"), &demo.token)?;
    let summary = demo.summary.clone();
    let url = &summary.url;
    if args.json {
        output::json(&summary)?;
    } else {
        println!();
        let mut table = Table::new(&["", "UNITS"]);
        table.row(vec![
            format!("issued (quota {QUOTA})"),
            summary.issued.to_string(),
        ]);
        table.row(vec![
            "refused beyond quota: quota_exhausted".into(),
            summary.refused_beyond_quota.to_string(),
        ]);
        table.row(vec![
            "failed tests: test_failed (recorded, no quota used)".into(),
            summary.failed_tests.to_string(),
        ]);
        table.row(vec![
            "clone, same serial new key: serial_conflict".into(),
            summary
                .clone_refusals("clone_serial", "serial_conflict")
                .to_string(),
        ]);
        table.row(vec![
            "clone, same key new serial: key_reused".into(),
            summary
                .clone_refusals("clone_key", "key_reused")
                .to_string(),
        ]);
        if let Some(opened) = summary.firmware_opened {
            table.row(vec![
                "firmware delivered, each image opened only with its unit's key".into(),
                opened.to_string(),
            ]);
        }
        table.row(vec!["errors".into(), summary.errors.to_string()]);
        table.print();
        let alerts: Vec<String> = summary
            .alerts
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        println!(
            "\nAlerts raised: {}{}.",
            alerts.join(", "),
            summary
                .drift_alert
                .as_deref()
                .map(|d| format!(" (the drift: {d})"))
                .unwrap_or_default()
        );
        println!(
            "\nAudit (over HTTPS, with the log's public key alone): the checkpoint of {} entries is \
             signed, every entry, tile and the root recomputed, {} events replayed, {} violations; \
             the log and the database {}.",
            summary.checkpoint_size,
            summary.events_replayed,
            summary.audit_violations.len(),
            if summary.database_agrees_with_log {
                "agree"
            } else {
                "DISAGREE"
            }
        );
        println!(
            "Done in {:.1} s: {}.",
            summary.seconds,
            if summary.as_expected {
                "every outcome as expected"
            } else {
                "NOT as expected"
            }
        );
        for problem in &summary.problems {
            println!("  problem: {problem}");
        }
    }
    if args.exit {
        demo.stop().await;
        if !summary.as_expected {
            bail!(
                "the demo's outcomes were not as expected: {}",
                summary.problems.join("; ")
            );
        }
        return Ok(());
    }
    demo.start_trickle(std::time::Duration::from_secs(2))
        .await?;
    if !args.json {
        println!(
            "\nThe server keeps running until Ctrl-C, with a slow trickle of units on {}:",
            touchmark_demo::TRICKLE_ORDER
        );
        output::fields(&[
            (
                "dashboard",
                format!("{}  (log in with the admin token)", summary.dashboard),
            ),
            ("API", format!("{url}/v1  (OpenAPI: {url}/openapi.json)")),
            (
                "root CA of the server",
                Installation::server_root_path(&dir).display().to_string(),
            ),
            (
                "root CA of the devices",
                Installation::device_root_path(&dir).display().to_string(),
            ),
            ("admin token", demo.token.clone()),
        ]);
        println!(
            "\nTry: touchmark order show {ORDER} --server {url} --data {} --token-file {}",
            dir.display(),
            dir.join("admin.token").display()
        );
    }
    shutdown::signal().await;
    demo.stop().await;
    Ok(())
}
