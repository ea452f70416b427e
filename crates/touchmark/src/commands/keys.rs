//! `touchmark keys`: where an installation's private keys live, and opening an installation
//! with them (the encrypted key store, or a PKCS#11 token named in `touchmark.toml`).

use std::path::{Path, PathBuf};
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
    /// Move every key of an installation from its encrypted files into a PKCS#11 token, where
    /// the token takes in keys: each is imported as a sensitive, non-extractable key, checked
    /// to sign as before, and logged (`key.migrated`); then `touchmark.toml` names the token
    /// and the files are set aside in `keys.migrated/` for you to destroy. Stop every server
    /// of the installation first.
    Migrate(MigrateArgs),
}

/// Arguments of `keys migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Where the installation lives.
    #[command(flatten)]
    pub data: DataArgs,
    /// The PKCS#11 module.
    #[arg(long, value_name = "PATH")]
    pub pkcs11_module: PathBuf,
    /// The token's label.
    #[arg(long, value_name = "LABEL")]
    pub pkcs11_token: String,
    /// A file holding the token's user PIN; `touchmark.toml` records its path.
    #[arg(long, value_name = "FILE", required_unless_present = "pkcs11_pin_env")]
    pub pkcs11_pin_file: Option<PathBuf>,
    /// An environment variable holding the token's user PIN, instead of a file.
    #[arg(long, value_name = "VAR", conflicts_with = "pkcs11_pin_file")]
    pub pkcs11_pin_env: Option<String>,
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
pub async fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::List(args) => list(&args),
        KeysCommand::Migrate(args) => migrate(args).await,
    }
}

async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    use touchmark_core::event::Actor;
    use touchmark_core::{Clock, SystemClock};
    use touchmark_pki::{KeyProvider, KeyStore};

    let dir = args.data.dir;
    let config = config::load(&dir, None, None)?;
    if let Some(token) = &config.pkcs11 {
        anyhow::bail!(
            "the keys of {} are in token {:?} already",
            dir.display(),
            token.token
        );
    }
    // A SQLite installation's server holds this lock: none may run while its keys move.
    let _lock = match config.database {
        crate::database::Database::Sqlite(_) => Some(Installation::lock(&dir)?),
        crate::database::Database::Postgres(_) => None,
    };
    let files = KeyStore::open(&dir.join("keys"), &secrets::passphrase()?)
        .with_context(|| format!("cannot open the key store of {}", dir.display()))?;
    let token_config = Pkcs11Config {
        module: args.pkcs11_module,
        token: args.pkcs11_token,
        pin_file: args
            .pkcs11_pin_file
            .map(|f| std::path::absolute(&f).unwrap_or(f)),
        pin_env: args.pkcs11_pin_env,
        sessions: None,
        labels: Default::default(),
        label_prefix: None,
    };
    let token = Pkcs11Keys::open(&token_config)?;
    let names = KeyProvider::names(&files)?;
    if let Some(taken) = names.iter().find(|n| token.contains(n)) {
        anyhow::bail!(
            "token {:?} already holds a key labelled {:?}: nothing was moved",
            token_config.token,
            token_config.label_of(taken)
        );
    }
    let mut moved = Vec::new();
    for name in &names {
        let key = files.load_software(name)?;
        let signer = token
            .import_key(name, &key)
            .with_context(|| format!("cannot move key {name} into the token"))?;
        println!("moved {name} ({}) into the token", signer.algorithm());
        moved.push((name.clone(), signer));
    }
    // Every key is in the token and signs as before: the installation opens from it.
    let token: Arc<dyn KeyProvider> = Arc::new(token);
    let installation = Installation::open_with(&dir, Arc::clone(&token))
        .context("the installation does not open with the keys in the token")?;
    let store = config.database.open().await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    installation
        .check_database(
            store.as_ref(),
            matches!(config.database, crate::database::Database::Sqlite(_)),
            clock.now(),
        )
        .await?;
    let authority = touchmark_authority::Authority::new(&installation, store, clock);
    for (name, signer) in &moved {
        authority
            .log_key_migrated(Actor::System, name, files.store_kind(), signer.as_ref())
            .await?;
    }
    let path = dir.join(config::FILE);
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    text.push_str(&config::pkcs11_section(&token_config));
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    let aside = dir.join("keys.migrated");
    std::fs::rename(dir.join("keys"), &aside)
        .with_context(|| format!("cannot move {} aside", dir.join("keys").display()))?;
    println!(
        "{} keys moved into token {:?}; touchmark.toml names it. The encrypted files are in {}: \
         destroy them once the token is backed up.",
        moved.len(),
        token_config.token,
        aside.display()
    );
    Ok(())
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
