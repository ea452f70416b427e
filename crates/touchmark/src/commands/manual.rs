//! `touchmark completions` and `touchmark man`: shell completions and manual pages, generated
//! from the same definitions as `--help`, so that they never disagree with it.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::Cli;

/// Arguments of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Arguments of `man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write a page for every command into this directory (touchmark.1,
    /// touchmark-station-provision.1, ...) instead of printing touchmark.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Prints the completion script for `args.shell` on standard output.
///
/// # Errors
/// Never, in practice: writing to standard output is all it does.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<()> {
    let mut command = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut command, "touchmark", &mut out);
    out.flush().context("cannot write the completions")
}

/// Prints the top-level manual page, or writes every command's page into `args.dir`.
///
/// # Errors
/// When the directory cannot be created or a page cannot be written.
pub fn man(args: &ManArgs) -> anyhow::Result<()> {
    let command = Cli::command();
    match &args.dir {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(command)
                .render(&mut out)
                .context("cannot write the manual page")?;
            out.flush().context("cannot write the manual page")
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("cannot write the manual pages into {}", dir.display()))
        }
    }
}
