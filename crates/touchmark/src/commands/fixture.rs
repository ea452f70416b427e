//! What runs on the fixture PC: `station enroll`, `station provision` and `station receipt`. The
//! station's side of the API is `touchmark_client::station`'s; this reads the files and prints.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use touchmark_client::station::StationDir;

use crate::args::{StationDirArgs, StationServerArgs};
use crate::output::{self, fields};
use crate::secrets;

/// Arguments of `station enroll`.
#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The server's URL.
    #[arg(long, env = "TOUCHMARK_SERVER")]
    pub server: String,
    /// The one-time enrollment token from `touchmark station create` [env:
    /// TOUCHMARK_ENROLLMENT_TOKEN]. Either flag overrides the variable.
    // The variable is read in `enroll`, not by clap, so that an exported one never conflicts
    // with a typed --token-file.
    #[arg(long, conflicts_with = "token_file")]
    pub token: Option<String>,
    /// A file holding the enrollment token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// The root CA that signed the server's certificate: the installation's infrastructure root,
    /// `certs/infra-root-ca.pem`, given to the factory with the token.
    #[arg(long)]
    pub ca: PathBuf,
    /// The station directory to write.
    #[command(flatten)]
    pub station: StationDirArgs,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `station provision`.
#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// The order to count the unit against.
    #[arg(long)]
    pub order: String,
    /// The unit's serial.
    #[arg(long)]
    pub serial: String,
    /// The unit's CSR, PEM or DER.
    #[arg(long)]
    pub csr: PathBuf,
    /// The unit's test record, JSON (Touchmark's or OpenHTF's), naming the unit tested
    /// (`serial`, or OpenHTF's `dut_id`).
    #[arg(long)]
    pub test: PathBuf,
    /// Directory to write certificate.pem, chain.pem, root-ca.pem (the device root) and
    /// receipt.json into.
    #[arg(long)]
    pub out: PathBuf,
    /// The unit's secure-element attestation: its chip vendor's certificates of its keys and
    /// their intermediates, PEM, for a product that requires attestation.
    #[arg(long, value_name = "PEM")]
    pub attestation: Option<PathBuf>,
    /// The station directory.
    #[command(flatten)]
    pub station: StationDirArgs,
    /// The server, when it is not the one the station enrolled with.
    #[command(flatten)]
    pub server: StationServerArgs,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `station receipt`.
#[derive(Debug, Args)]
pub struct ReceiptArgs {
    /// The order the unit was counted against.
    #[arg(long)]
    pub order: String,
    /// The unit's serial.
    #[arg(long)]
    pub serial: String,
    /// Write the receipt to this file instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The station directory.
    #[command(flatten)]
    pub station: StationDirArgs,
    /// The server, when it is not the one the station enrolled with.
    #[command(flatten)]
    pub server: StationServerArgs,
}

/// A refusal by the server's policy: `station provision` exits with code 2.
#[derive(Debug, thiserror::Error)]
#[error("refused: {code}: {message}")]
pub struct Refused {
    /// The stable code.
    pub code: String,
    /// The server's message.
    pub message: String,
}

/// Runs `station enroll`.
///
/// # Errors
/// When the directory is already enrolled, the CA cannot be read, or the server refuses.
pub async fn enroll(args: EnrollArgs) -> anyhow::Result<()> {
    let root_ca_pem = std::fs::read_to_string(&args.ca)
        .with_context(|| format!("cannot read the root CA {}", args.ca.display()))?;
    let Some(token) = secrets::secret(
        args.token.as_deref(),
        args.token_file.as_deref(),
        "TOUCHMARK_ENROLLMENT_TOKEN",
        None,
    )?
    else {
        bail!(
            "give the enrollment token with --token or --token-file, or in TOUCHMARK_ENROLLMENT_TOKEN"
        );
    };
    let dir = StationDir::new(&args.station.dir);
    let (enrolled, settings) = dir.enroll(&args.server, &root_ca_pem, token).await?;
    if args.json {
        return output::json(&settings);
    }
    println!(
        "Enrolled station {} of factory {}.",
        enrolled.station, enrolled.factory
    );
    fields(&[
        ("directory", args.station.dir.display().to_string()),
        ("server", settings.server),
    ]);
    Ok(())
}

/// Runs `station provision`.
///
/// # Errors
/// [`Refused`] when the server's policy refuses the unit; any other error otherwise.
pub async fn provision(args: ProvisionArgs) -> anyhow::Result<()> {
    let csr = std::fs::read(&args.csr)
        .with_context(|| format!("cannot read the CSR {}", args.csr.display()))?;
    if csr.len() > 64 * 1024 {
        bail!("the CSR {} is larger than 64 KiB", args.csr.display());
    }
    let test_text = std::fs::read_to_string(&args.test)
        .with_context(|| format!("cannot read the test record {}", args.test.display()))?;
    let test: serde_json::Value = serde_json::from_str(&test_text)
        .with_context(|| format!("the test record {} is not JSON", args.test.display()))?;
    let attestation = args
        .attestation
        .as_ref()
        .map(|path| {
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the attestation {}", path.display()))
        })
        .transpose()?;
    let station = StationDir::new(&args.station.dir).server(args.server.url);
    let done = match station
        .provision(
            &args.order,
            &args.serial,
            &csr,
            test,
            attestation,
            &args.out,
        )
        .await
    {
        Ok(done) => done,
        Err(e) => {
            let Some(body) = e.refusal() else {
                return Err(e.into());
            };
            if args.json {
                output::json(body)?;
            }
            return Err(Refused {
                code: body.code.clone(),
                message: body.message.clone(),
            }
            .into());
        }
    };
    if args.json {
        return output::json(&done);
    }
    let what = if done.status == "already_issued" {
        "Already issued (nothing consumed)"
    } else {
        "Issued"
    };
    println!("{what}: unit {} in order {}.", done.serial, done.order);
    fields(&[
        (
            "certificate",
            args.out.join("certificate.pem").display().to_string(),
        ),
        ("sha256", done.cert_sha256),
        (
            "log index",
            done.receipt.index.map_or_else(
                || "pending (the sequencer assigns it within a second)".to_owned(),
                |i| i.to_string(),
            ),
        ),
        ("leaf hash", done.receipt.leaf_hash),
    ]);
    Ok(())
}

/// Runs `station receipt`.
///
/// # Errors
/// When the directory is not an enrolled station's, the server refuses, or the file cannot be
/// written.
pub async fn receipt(args: ReceiptArgs) -> anyhow::Result<()> {
    let (client, _) = StationDir::new(&args.station.dir)
        .server(args.server.url)
        .client()?;
    let receipt = client.station_receipt(&args.order, &args.serial).await?;
    match args.out {
        Some(path) => std::fs::write(&path, &receipt)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{receipt}"),
    }
    Ok(())
}
