//! `touchmark backup` and `touchmark restore`: a SQLite installation copied while it may be
//! served, and a new data directory made from such a copy. The layout and the checks are
//! `touchmark_authority::Installation`'s; the consistent database copy is the SQLite
//! backend's. A PostgreSQL installation is refused: pg_dump is the tool for its records.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use serde::Serialize;
use touchmark_authority::Installation;
use touchmark_authority::installation::BackupManifest;
use touchmark_core::{Clock, SystemClock};

use crate::args::{DataArgs, DatabaseArgs};
use crate::config;
use crate::database::Database;
use crate::output::{self, fields};

/// Arguments of `backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The directory to write the backup into: new, or empty.
    #[arg(value_name = "DEST")]
    pub dest: PathBuf,
    /// The installation to back up.
    #[command(flatten)]
    pub data: DataArgs,
    /// Where its records live (a PostgreSQL installation is refused: use pg_dump).
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Print the manifest as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup directory, written by `touchmark backup`.
    #[arg(value_name = "SRC")]
    pub src: PathBuf,
    /// The data directory to make: new, or empty, and served by no one.
    #[command(flatten)]
    pub data: DataArgs,
    /// Print the manifest as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Done<'a> {
    #[serde(flatten)]
    manifest: &'a BackupManifest,
    directory: String,
}

fn print(
    manifest: &BackupManifest,
    directory: &std::path::Path,
    json: bool,
    what: &str,
) -> anyhow::Result<()> {
    if json {
        return output::json(&Done {
            manifest,
            directory: directory.display().to_string(),
        });
    }
    let bytes: u64 = manifest.files.iter().map(|f| f.bytes).sum();
    println!("{what} {}.", directory.display());
    fields(&[
        (
            "taken",
            touchmark_core::clock::format_timestamp(manifest.created_at),
        ),
        ("from", manifest.source.clone()),
        (
            "files",
            format!(
                "{} ({bytes} bytes), private to their owner",
                manifest.files.len()
            ),
        ),
    ]);
    Ok(())
}

/// Runs `touchmark backup`.
///
/// # Errors
/// For a PostgreSQL installation, a directory without an installation, a destination that
/// holds something, or a copy that fails.
pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let dir = args.data.dir;
    let config = config::load(&dir, None, args.database.url)?;
    if let Database::Postgres(url) = &config.database {
        bail!(
            "the records of this installation are in {url}: back them up with PostgreSQL's own \
             tool, pg_dump (`pg_dump --format=custom --file=touchmark.dump URL`, restored with \
             pg_restore), and copy the data directory {} with it (its keys/, certs/, \
             log-verifier.txt and touchmark.toml); `touchmark backup` copies SQLite \
             installations",
            dir.display()
        );
    }
    let dest = args.dest;
    let manifest = tokio::task::spawn_blocking({
        let (dir, dest) = (dir.clone(), dest.clone());
        move || {
            Installation::backup(
                &dir,
                &dest,
                touchmark_store_sqlite::copy::snapshot,
                SystemClock.now(),
            )
        }
    })
    .await??;
    print(&manifest, &dest, args.json, "Backed up into")
}

/// Runs `touchmark restore`.
///
/// # Errors
/// For a data directory that is served or holds anything, or a backup that is incomplete or
/// damaged.
pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let dir = args.data.dir;
    let src = args.src;
    let manifest = tokio::task::spawn_blocking({
        let (dir, src) = (dir.clone(), src.clone());
        move || Installation::restore(&src, &dir)
    })
    .await??;
    if !args.json {
        print(&manifest, &dir, false, "Restored")?;
        println!(
            "\nNext: touchmark doctor --data {0}, then touchmark serve --data {0} (with the \
             installation's passphrase)",
            dir.display()
        );
        return Ok(());
    }
    print(&manifest, &dir, true, "Restored")
}
