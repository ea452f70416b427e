//! `touchmark init`: a new installation and its first admin token.

use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;
use touchmark_core::event::Actor;
use touchmark_core::{Clock, SystemClock};
use touchmark_server::authority::Authority;
use touchmark_server::{InitOptions, Installation};
use touchmark_store::sqlite::SqliteStore;

use crate::cli::InitArgs;
use crate::{config, output, secrets};

#[derive(Serialize)]
struct Initialized {
    data: String,
    root_ca: String,
    log_verifier_key: String,
    admin_token_id: String,
    admin_token: String,
}

/// Runs `touchmark init`.
///
/// # Errors
/// When the directory already holds an installation, the passphrase is missing, or a step fails.
pub async fn run(args: InitArgs) -> anyhow::Result<()> {
    let passphrase = secrets::passphrase()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let options = InitOptions {
        organization: args.org,
        hosts: args.hosts,
        log_origin: args.log_origin,
    };
    let dir = args.data.dir;
    let installation = Installation::init(&dir, &passphrase, &options, clock.now())?;
    std::fs::write(dir.join(config::FILE), config::initial_file())
        .with_context(|| format!("cannot write {}", dir.join(config::FILE).display()))?;
    let store = Arc::new(SqliteStore::open(&Installation::database_path(&dir))?);
    let authority = Authority::new(&installation, store, clock);
    let (id, _, token) = authority
        .create_token(
            Actor::System,
            "admin",
            "first admin token, created by touchmark init",
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the first admin token: {}", e.message))?;
    if let Some(path) = &args.admin_token_file {
        secrets::write_secret_file(path, &token)?;
    }
    let verifier = std::fs::read_to_string(dir.join("log-verifier.txt")).unwrap_or_default();
    let done = Initialized {
        data: dir.display().to_string(),
        root_ca: dir.join("certs/root-ca.pem").display().to_string(),
        log_verifier_key: verifier.trim().to_owned(),
        admin_token_id: id.to_string(),
        admin_token: token,
    };
    if args.json {
        return output::json(&done);
    }
    println!("Initialized a Touchmark installation in {}", done.data);
    output::fields(&[
        ("root CA", done.root_ca),
        ("log verifier key", done.log_verifier_key),
        ("admin token id", done.admin_token_id),
    ]);
    println!(
        "\nAdmin token (shown once; only its hash is stored):\n\n  {}\n",
        done.admin_token
    );
    println!("Next: touchmark serve --data {}", dir.display());
    Ok(())
}
