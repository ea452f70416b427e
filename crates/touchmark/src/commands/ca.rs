//! `touchmark ca`: products' issuing CAs under an offline device root. `csr` asks the server
//! for the request its product key signs; the root, offline, signs it; `install` hands the
//! certificate back, and the server checks it (key, profile, chain to the device root) before
//! it stores it.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use touchmark_core::api::InstallCa;

use crate::args::ApiArgs;
use crate::commands::admin::client;
use crate::output;

/// `ca` subcommands.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Print (or write to --out) a PKCS#10 request, PEM, for a product's issuing CA: subject O
    /// and CN of the product's CA, signed by its key where the installation keeps keys (files
    /// or a PKCS#11 token). The offline device root signs it.
    Csr {
        /// The product.
        #[arg(long)]
        product: String,
        /// Write the request to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Install the issuing CA certificate the offline device root signed for a product. It is
    /// checked first: its key is the product's, it is a CA (basicConstraints cA, keyUsage
    /// keyCertSign and cRLSign) valid now, and the device root issued it; a certificate that
    /// fails is refused with its code (ca_key_mismatch, ca_profile_invalid, ca_chain_invalid,
    /// ca_certificate_invalid) and nothing changes. Logged as `ca.installed`.
    Install {
        /// The product.
        #[arg(long)]
        product: String,
        /// The CA certificate, PEM.
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        /// The chain handed back with it, PEM: at most the device root itself.
        #[arg(long, value_name = "FILE")]
        chain: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn read(path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Runs a `ca` subcommand.
///
/// # Errors
/// When a file cannot be read or written, or the server refuses.
pub async fn run(command: CaCommand) -> anyhow::Result<()> {
    match command {
        CaCommand::Csr { product, out, api } => {
            let pem = client(&api)?.product_ca_csr(&product).await?;
            match out {
                Some(path) => std::fs::write(&path, &pem)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{pem}"),
            }
        }
        CaCommand::Install {
            product,
            cert,
            chain,
            api,
        } => {
            let request = InstallCa {
                certificate_pem: read(&cert)?,
                chain_pem: chain.as_ref().map(read).transpose()?,
            };
            let p = client(&api)?.install_product_ca(&product, &request).await?;
            if api.json {
                return output::json(&p);
            }
            println!(
                "Installed the issuing CA of product {}: it issues from now on.",
                p.id
            );
        }
    }
    Ok(())
}
