//! `touchmark init`: a new installation and its first admin token.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use touchmark_authority::Authority;
use touchmark_authority::{InitOptions, Installation};
use touchmark_core::command::NewTokenRequest;
use touchmark_core::entity::Role;
use touchmark_core::event::Actor;
use touchmark_core::field::Label;
use touchmark_core::{Clock, SystemClock};
use touchmark_pki_pkcs11::{Pkcs11Config, Pkcs11Keys};
use touchmark_store::Store;

use crate::args::{DataArgs, DatabaseArgs};
use crate::database::{self, Database};
use crate::{config, output, secrets};

/// Arguments of `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where the installation lives.
    #[command(flatten)]
    pub data: DataArgs,
    /// Where its records live.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// A DNS name or IP address for the server's TLS certificate; repeat for several.
    #[arg(long = "host", default_values = ["localhost", "127.0.0.1", "::1"])]
    pub hosts: Vec<String>,
    /// The organization named in the CA certificates.
    #[arg(long, default_value = "Touchmark")]
    pub org: String,
    /// The audit log's origin (its name in checkpoints), such as `touchmark.example.com/log`.
    #[arg(long, default_value = "touchmark.local/log")]
    pub log_origin: String,
    /// Where the keys are made: a PKCS#11 token instead of encrypted files.
    #[command(flatten)]
    pub pkcs11: Pkcs11Args,
    /// The device root's certificate, PEM, when its key stays offline (in a safe, or a
    /// hardware module that never comes online): no device root key is made. Each product's
    /// issuing CA is then signed by that root elsewhere (`touchmark ca csr`, `ca install`)
    /// before it issues; the root's CRL is made offline too.
    #[arg(long, value_name = "FILE")]
    pub root_cert: Option<PathBuf>,
    /// Also write the first admin token to this file (created with mode 0600).
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// The base URL relying parties reach this server at (https://pki.example.com): new device
    /// certificates name their CRL (`URL/crl/PRODUCT/ORDER`) and OCSP responder (`URL/ocsp`)
    /// under it, served by `touchmark serve`. Kept as `public_url` in touchmark.toml. Without
    /// it, certificates name none.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A PKCS#11 token to make every key of a new installation in (`init`, `demo`).
#[derive(Debug, Clone, Args)]
pub struct Pkcs11Args {
    /// Make every private key (the CAs', the server's TLS key and the log key) inside the
    /// token of this PKCS#11 module, as sensitive, non-extractable keys, instead of in files
    /// encrypted under TOUCHMARK_KEY_PASSPHRASE. Needs --pkcs11-token and a PIN; the token must
    /// hold none of an installation's keys yet.
    #[arg(long, value_name = "PATH", requires = "pkcs11_token")]
    pub pkcs11_module: Option<PathBuf>,
    /// The label of the PKCS#11 token (as `pkcs11-tool -L` shows it).
    #[arg(long, value_name = "LABEL", requires = "pkcs11_module")]
    pub pkcs11_token: Option<String>,
    /// A file holding the token's user PIN; `touchmark.toml` records its path for `serve`.
    #[arg(long, value_name = "FILE", requires = "pkcs11_module")]
    pub pkcs11_pin_file: Option<PathBuf>,
    /// An environment variable holding the token's user PIN, instead of a file.
    #[arg(
        long,
        value_name = "VAR",
        requires = "pkcs11_module",
        conflicts_with = "pkcs11_pin_file"
    )]
    pub pkcs11_pin_env: Option<String>,
}

impl Pkcs11Args {
    /// The token's configuration, when one is named (the PIN file's path made absolute, since
    /// `touchmark.toml` records it).
    pub fn config(&self) -> Option<Pkcs11Config> {
        let (Some(module), Some(token)) = (&self.pkcs11_module, &self.pkcs11_token) else {
            return None;
        };
        Some(Pkcs11Config {
            module: module.clone(),
            token: token.clone(),
            pin_file: self
                .pkcs11_pin_file
                .as_ref()
                .map(|f| std::path::absolute(f).unwrap_or_else(|_| f.clone())),
            pin_env: self.pkcs11_pin_env.clone(),
            sessions: None,
            labels: Default::default(),
            label_prefix: None,
        })
    }
}

/// Opens the new installation's database. A shared database must be empty: two installations
/// (two root CAs, two log keys) must never write into one log.
async fn open_empty(database: &Database) -> anyhow::Result<Arc<dyn Store>> {
    let store = database.open().await?;
    if !store.is_empty().await? {
        anyhow::bail!(
            "{database} already holds a Touchmark installation's records; use an empty database, or `touchmark serve --data DIR --database URL` with that installation's data directory"
        );
    }
    Ok(store)
}

/// Where `init` makes the keys.
enum Keys {
    /// Encrypted files under the passphrase.
    Files(touchmark_pki::Passphrase),
    /// A PKCS#11 token.
    Token(Pkcs11Keys),
}

/// Opens the token for a new installation: it must make Ed25519 keys (the log key) and hold
/// none of the installation's keys yet, so that nothing is made when the rest cannot be.
pub(crate) fn token_for_init(config: &Pkcs11Config) -> anyhow::Result<Pkcs11Keys> {
    use touchmark_authority::installation::key_names;
    use touchmark_pki::{KeyAlgorithm, KeyProvider};

    let keys = Pkcs11Keys::open(config)?;
    for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
        if !keys.supports(alg)? {
            anyhow::bail!(
                "token {:?} cannot make {alg} keys, which the installation needs (the log key is \
                 Ed25519, the CAs' keys P-256): use a token that has them, or keep the keys in \
                 encrypted files (init without --pkcs11-module)",
                config.token
            );
        }
    }
    for name in [
        key_names::ROOT_CA,
        key_names::INFRA_ROOT_CA,
        key_names::INFRA_STATION_CA,
        key_names::INFRA_SERVER_TLS,
        key_names::LOG,
    ] {
        if keys.contains(name) {
            anyhow::bail!(
                "token {:?} already holds a key labelled {:?}: keys are never replaced; use \
                 another token, or remove that installation's keys from it first",
                config.token,
                config.label_of(name)
            );
        }
    }
    Ok(keys)
}

#[derive(Serialize)]
struct Initialized {
    data: String,
    device_root_ca: String,
    infra_root_ca: String,
    log_verifier_key: String,
    admin_token_id: String,
    admin_token: String,
}

/// Runs `touchmark init`.
///
/// # Errors
/// When the directory already holds an installation, the passphrase is missing, or a step fails.
pub async fn run(args: InitArgs) -> anyhow::Result<()> {
    // The keys' home first: a token that cannot be reached, or a missing passphrase, fails
    // before anything is made.
    let pkcs11 = args.pkcs11.config();
    let keys = match &pkcs11 {
        Some(config) => Keys::Token(token_for_init(config)?),
        None => Keys::Files(secrets::passphrase()?),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let offline_root = match &args.root_cert {
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(
                touchmark_pki::Certificate::from_pem(&pem)
                    .with_context(|| format!("{} is not one PEM certificate", path.display()))?,
            )
        }
        None => None,
    };
    let options = InitOptions {
        organization: args.org,
        hosts: args.hosts,
        log_origin: args.log_origin,
        offline_root,
    };
    let dir = args.data.dir;
    let url = match args.database.url {
        Some(url) => Some(url),
        None => database::url_from_file_variable()?,
    };
    let database = Database::for_dir(&dir, url);
    // Open the database first: a PostgreSQL database that already holds an installation is
    // refused before any key is made.
    let shared = match &database {
        Database::Postgres(_) => Some(open_empty(&database).await?),
        Database::Sqlite(_) => None,
    };
    let public_url = args
        .public_url
        .as_deref()
        .map(config::public_url_checked)
        .transpose()?;
    let installation = match keys {
        Keys::Files(passphrase) => Installation::init(&dir, &passphrase, &options, clock.now())?,
        Keys::Token(token) => {
            Installation::init_with(&dir, Arc::new(token), &options, clock.now())?
        }
    };
    let mut file = config::initial_file(&database);
    if let Some(token) = &pkcs11 {
        file.push_str(&config::pkcs11_section(token));
    }
    if let Some(url) = &public_url {
        file.push_str(&config::public_url_line(url));
    }
    std::fs::write(dir.join(config::FILE), file)
        .with_context(|| format!("cannot write {}", dir.join(config::FILE).display()))?;
    // Installation::init refused a directory that holds a SQLite database already; the file is
    // created only now.
    let store = match shared {
        Some(store) => store,
        None => database.open().await?,
    };
    installation.claim(store.as_ref(), clock.now()).await?;
    let authority = Authority::new(&installation, store, clock);
    authority
        .log_installation_keys(Actor::System)
        .await
        .context("cannot log the installation's keys")?;
    let first = NewTokenRequest {
        role: Role::Admin,
        label: Label::parse("label", "first admin token, created by touchmark init")?,
    };
    let (id, _, token) = authority
        .create_token(Actor::System, first)
        .await
        .context("cannot create the first admin token")?;
    if let Some(path) = &args.admin_token_file {
        secrets::write_secret_file(path, &token)?;
    }
    let verifier = std::fs::read_to_string(dir.join("log-verifier.txt")).unwrap_or_default();
    let done = Initialized {
        data: dir.display().to_string(),
        device_root_ca: Installation::device_root_path(&dir).display().to_string(),
        infra_root_ca: Installation::server_root_path(&dir).display().to_string(),
        log_verifier_key: verifier.trim().to_owned(),
        admin_token_id: id.to_string(),
        admin_token: token,
    };
    if args.json {
        return output::json(&done);
    }
    println!("Initialized a Touchmark installation in {}", done.data);
    output::fields(&[
        ("device root CA", done.device_root_ca),
        ("infrastructure root CA", done.infra_root_ca),
        ("log verifier key", done.log_verifier_key),
        ("admin token id", done.admin_token_id),
    ]);
    println!(
        "\nAdmin token (shown once; only its hash is stored):\n\n  {}\n",
        done.admin_token
    );
    println!(
        "Relying parties of the devices (brokers, backends) trust the device root CA; stations \
         and admins trust the infrastructure root CA for the server.\n"
    );
    match &database {
        Database::Postgres(url) if url.has_password() => println!(
            "Next: TOUCHMARK_DATABASE_URL=… touchmark serve --data {} (records in {database})",
            dir.display()
        ),
        _ => println!("Next: touchmark serve --data {}", dir.display()),
    }
    Ok(())
}
