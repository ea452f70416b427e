//! `touchmark keys`: where an installation's private keys live, and opening an installation
//! with them (the encrypted key store, or a PKCS#11 token named in `touchmark.toml`).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;
use sha2::{Digest, Sha256};
use touchmark_authority::Installation;
use touchmark_pki_pkcs11::{Pkcs11Config, Pkcs11Keys};

use crate::args::DataArgs;
use crate::{config, output, secrets};

/// Opens the installation in `dir` with its keys: from the token of `pkcs11` when the
/// configuration names one (no passphrase is read), else from the encrypted key store.
///
/// # Errors
/// When the token cannot be reached or logged into, a key is missing or of the wrong type,
/// or (for files) the passphrase is missing or wrong.
pub fn open_installation(
    dir: &Path,
    pkcs11: Option<&Pkcs11Config>,
) -> anyhow::Result<Installation> {
    match pkcs11 {
        Some(token) => {
            let keys = Pkcs11Keys::open(token).with_context(|| {
                format!(
                    "the keys of {} are in a PKCS#11 token ([pkcs11] in {})",
                    dir.display(),
                    dir.join(config::FILE).display()
                )
            })?;
            Ok(Installation::open_with(dir, Arc::new(keys))?)
        }
        None => Ok(Installation::open(dir, &secrets::passphrase()?)?),
    }
}

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List each private key of the installation: its name, where it lives, its algorithm and
    /// the SHA-256 hash of its public key (SubjectPublicKeyInfo).
    List(ListArgs),
}

/// Arguments of `keys list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Where the installation lives.
    #[command(flatten)]
    pub data: DataArgs,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One key, as `keys list` shows it.
#[derive(Debug, Serialize)]
struct KeyRow {
    name: String,
    location: String,
    algorithm: String,
    public_key_sha256: String,
}

/// Runs a `keys` subcommand.
///
/// # Errors
/// When the installation or a key cannot be opened.
pub fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::List(args) => list(&args),
    }
}

fn list(args: &ListArgs) -> anyhow::Result<()> {
    let dir = &args.data.dir;
    let config = config::load(dir, None, None)?;
    let installation = open_installation(dir, config.pkcs11.as_ref())?;
    let keys = installation.keys();
    let location = keys.describe();
    let mut rows = Vec::new();
    for name in keys.names()? {
        let signer = keys
            .load(&name)
            .with_context(|| format!("key {name} in {location}"))?;
        rows.push(KeyRow {
            public_key_sha256: hex::encode(Sha256::digest(signer.public_key_spki())),
            algorithm: signer.algorithm().to_string(),
            location: location.clone(),
            name,
        });
    }
    if args.json {
        return output::json(&rows);
    }
    println!(
        "{:<24} {:<11} {:<64}  LOCATION",
        "NAME", "ALGORITHM", "PUBLIC KEY SHA-256"
    );
    for row in &rows {
        println!(
            "{:<24} {:<11} {:<64}  {}",
            row.name, row.algorithm, row.public_key_sha256, row.location
        );
    }
    Ok(())
}
