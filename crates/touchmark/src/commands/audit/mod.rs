//! `touchmark audit`: verify the audit log offline with the log's public key alone, or export
//! it as a bundle that can be verified later without the server (DESIGN §6).
//!
//! `verify` checks the checkpoint's signature, recomputes every leaf hash, tile and the root
//! from the entries, checks that the log extends the checkpoint it verified last time (kept in
//! a state file), and replays the events to report, per order, the quota, the units issued,
//! the failed tests and the refusals, and every violation, naming the entry or the tile.

mod remote;
mod report;
mod verify;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use touchmark_tlog::checkpoint::{Checkpoint, SignedCheckpoint};
use touchmark_tlog::note::NoteVerifier;

use crate::output;

pub use remote::Remote;
pub use report::Report;

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
    pub trust: crate::cli::RootCaArgs,
    /// Print the whole report as JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
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
    pub trust: crate::cli::RootCaArgs,
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
            let report = verify(&args, None).await?;
            if args.json {
                output::json(&report)?;
            } else {
                report.print();
            }
            report.verdict()
        }
        AuditCommand::Export(args) => export(&args, None).await,
    }
}

/// Parses `--key`: a verifier key, or `@FILE` holding one.
fn verifier_key(arg: &str) -> anyhow::Result<NoteVerifier> {
    let text = match arg.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the verifier key file {file}"))?,
        None => arg.to_owned(),
    };
    NoteVerifier::parse(text.trim()).context("--key is not a valid verifier key")
}

fn progress(hidden: bool, prefix: &'static str) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix:>9} [{bar:30}] {human_pos}/{human_len} {per_sec} {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(prefix);
    bar
}

/// The root CA file: `--ca`, else the data directory's.
/// The cache directory: `--cache`, else `<state>.d`.
fn cache_dir(args: &VerifyArgs) -> PathBuf {
    args.cache.clone().unwrap_or_else(|| {
        let mut dir = args.state.as_os_str().to_owned();
        dir.push(".d");
        PathBuf::from(dir)
    })
}

/// Reads the checkpoint verified by the last run, if any, and verifies it again.
fn load_state(path: &Path, key: &NoteVerifier) -> anyhow::Result<Option<Checkpoint>> {
    let note = match std::fs::read(path) {
        Ok(note) => note,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let signed = SignedCheckpoint::open(&note, key).with_context(|| {
        format!(
            "the state file {} does not hold a checkpoint signed by {}",
            path.display(),
            key.name()
        )
    })?;
    Ok(Some(signed.checkpoint().clone()))
}

/// Keeps `signed` as the last verified checkpoint: a temporary file, synced, then renamed over
/// the state file, so a crash leaves the old state or the new one.
fn save_state(path: &Path, signed: &SignedCheckpoint) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(signed.note().as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

/// Runs the whole verification and returns the report; violations are in the report, and
/// [`Report::verdict`] turns them into an error. `remote` replaces the HTTPS client (tests).
///
/// # Errors
/// When the checkpoint's signature does not verify, and when the log or the state cannot be
/// read at all.
pub async fn verify(args: &VerifyArgs, remote: Option<Remote>) -> anyhow::Result<Report> {
    let key = verifier_key(&args.key)?;
    let hidden = args.quiet || args.json;
    let is_url = args.source.starts_with("https://") || args.source.starts_with("http://");
    let remote = match remote {
        Some(remote) => Some(remote),
        None if is_url => Some(Remote::https(&args.source, &args.trust.path())?),
        None => None,
    };
    let (dir, note, from) = match &remote {
        Some(remote) => (
            cache_dir(args),
            remote.fetch("checkpoint", remote::MAX_CHECKPOINT).await?,
            remote.describe("checkpoint"),
        ),
        None => {
            let dir = PathBuf::from(&args.source);
            let path = dir.join("checkpoint");
            let note = std::fs::read(&path).with_context(|| {
                format!(
                    "cannot read {} (give an https:// URL or a directory written by `audit export`)",
                    path.display()
                )
            })?;
            (dir, note, path.display().to_string())
        }
    };
    let signed = SignedCheckpoint::open(&note, &key).with_context(|| {
        format!(
            "bad checkpoint: {from} is not a checkpoint validly signed by {}",
            key.name()
        )
    })?;
    let previous = load_state(&args.state, &key)?;
    if let Some(remote) = &remote {
        let bar = progress(hidden, "download");
        remote::mirror(remote, &dir, signed.checkpoint().size(), &bar).await?;
        bar.finish_and_clear();
    }

    let bar = progress(hidden, "verify");
    bar.set_length(signed.checkpoint().size());
    let checkpoint = signed.checkpoint().clone();
    let report = tokio::task::spawn_blocking({
        let bar = bar.clone();
        move || verify::audit(&dir, &checkpoint, previous.as_ref(), &bar)
    })
    .await
    .context("the verification task failed")??;
    bar.finish_and_clear();
    if report.tree_verified() {
        save_state(&args.state, &signed)?;
    }
    Ok(report)
}

/// What `audit export` wrote.
#[derive(Debug, serde::Serialize)]
struct Exported {
    dir: String,
    origin: String,
    size: u64,
    root: String,
    files: usize,
}

/// Runs `audit export`. `remote` replaces the HTTPS client (tests).
///
/// # Errors
/// When `DIR` is not empty, or a download fails.
pub async fn export(args: &ExportArgs, remote: Option<Remote>) -> anyhow::Result<()> {
    let dir = &args.dir;
    match std::fs::read_dir(dir) {
        Ok(mut entries) => anyhow::ensure!(
            entries.next().is_none(),
            "{} is not empty: refusing to overwrite it",
            dir.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
    let remote = match remote {
        Some(remote) => remote,
        None => Remote::https(&args.server, &args.trust.path())?,
    };
    let note = remote.fetch("checkpoint", remote::MAX_CHECKPOINT).await?;
    let key = remote.fetch("key", remote::MAX_KEY).await?;
    // The server's own key proves nothing to an auditor; it is checked here only so that a
    // server serving the wrong key, or a mangled checkpoint, fails now rather than offline.
    let key_text = String::from_utf8(key).context("the server's /log/key is not UTF-8")?;
    let verifier = NoteVerifier::parse(key_text.trim())
        .context("the server's /log/key is not a verifier key")?;
    let signed = SignedCheckpoint::open(&note, &verifier).with_context(|| {
        format!(
            "{} is not signed by the server's own key",
            remote.describe("checkpoint")
        )
    })?;
    let size = signed.checkpoint().size();
    let bar = progress(args.quiet || args.json, "export");
    let mirrored = remote::mirror(&remote, dir, size, &bar).await?;
    bar.finish_and_clear();
    remote::write_atomically(
        &dir.join("log-verifier.txt"),
        format!("{verifier}\n").as_bytes(),
    )
    .await?;
    // Written last: a directory with a checkpoint is complete.
    remote::write_atomically(&dir.join("checkpoint"), &note).await?;
    let exported = Exported {
        dir: dir.display().to_string(),
        origin: signed.checkpoint().origin().to_owned(),
        size,
        root: signed.checkpoint().root().to_base64(),
        files: mirrored,
    };
    if args.json {
        output::json(&exported)?;
    } else {
        println!(
            "exported {} at size {size} ({} tiles and bundles) to {}",
            exported.origin, exported.files, exported.dir
        );
        println!(
            "verify it offline with: touchmark audit verify {} --key <the log's verifier key, \
             obtained from a trusted source>",
            exported.dir
        );
    }
    Ok(())
}
