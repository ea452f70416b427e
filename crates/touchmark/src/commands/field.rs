//! `touchmark field`: what a field backend asks of Touchmark (issue 17, docs/field.md).

use std::path::PathBuf;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::Subcommand;
use touchmark_pki::{KeyAlgorithm, SoftwareSigner};

use crate::args::ApiArgs;
use crate::commands::admin::client;
use crate::output::{self, fields, or_dash};

/// `field` subcommands.
#[derive(Debug, Subcommand)]
pub enum FieldCommand {
    /// Ask whether a device is genuine, unknown, revoked or a clone suspect, with a field
    /// token. With --key, prove possession of the device's key: a challenge is fetched and
    /// signed here, and the key is never sent.
    Verify {
        /// The device's chain, its certificate first: PEM, or DER.
        #[arg(long)]
        chain: PathBuf,
        /// The device's private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), P-256.
        #[arg(long)]
        key: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// Runs a `field` subcommand.
///
/// # Errors
/// When a file cannot be read, or the server refuses or cannot be reached.
pub async fn run(command: FieldCommand) -> anyhow::Result<()> {
    let FieldCommand::Verify { chain, key, api } = command;
    let bytes =
        std::fs::read(&chain).with_context(|| format!("cannot read {}", chain.display()))?;
    // PEM as it is; DER certificates one after the other as their base64.
    let text = match String::from_utf8(bytes) {
        Ok(text) if text.contains("-----BEGIN") => text,
        Ok(text) => STANDARD.encode(text.as_bytes()),
        Err(e) => STANDARD.encode(e.as_bytes()),
    };
    let signer = match &key {
        None => None,
        Some(path) => Some(load_key(path)?),
    };
    let verdict = client(&api)?
        .field_verify_chain(
            &text,
            signer.as_ref().map(|s| s as &dyn touchmark_pki::Signer),
        )
        .await?;
    if api.json {
        return output::json(&verdict);
    }
    let mut lines = vec![("verdict", verdict.verdict.clone())];
    if let Some(reason) = &verdict.reason {
        lines.push(("reason", reason.clone()));
    }
    if let Some(unit) = &verdict.unit {
        lines.push(("serial", unit.serial.clone()));
        lines.push(("product", unit.product.clone()));
        lines.push(("order", unit.order.clone()));
        lines.push(("factory", or_dash(unit.factory.as_deref())));
        lines.push(("station", or_dash(unit.station.as_deref())));
        lines.push(("issued", unit.issued_at.clone()));
    }
    if let Some(r) = &verdict.revocation {
        lines.push((
            "revoked",
            format!("{} ({}) at {}", r.scope, r.reason, r.revoked_at),
        ));
    }
    for check in &verdict.checks {
        lines.push(("check", format!("{}: {}", check.name, check.result)));
    }
    for e in &verdict.evidence {
        lines.push(("evidence", e.clone()));
    }
    fields(&lines);
    Ok(())
}

fn load_key(path: &std::path::Path) -> anyhow::Result<SoftwareSigner> {
    let pem =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let blocks = touchmark_pki::pem::decode_all(&pem)
        .with_context(|| format!("{} is not PEM", path.display()))?;
    let block = blocks
        .iter()
        .find(|b| b.label == "PRIVATE KEY")
        .with_context(|| {
            format!(
                "{} holds no `PRIVATE KEY` block (PKCS#8; convert with `openssl pkcs8 -topk8 -nocrypt`)",
                path.display()
            )
        })?;
    SoftwareSigner::from_pkcs8(KeyAlgorithm::EcdsaP256, &block.der)
        .with_context(|| format!("{} is not a P-256 private key", path.display()))
}
