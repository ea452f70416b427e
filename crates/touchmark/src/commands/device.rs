//! `touchmark device`: a unit's side of Touchmark, to try the device routes without hardware.
//! `keygen` makes what a unit's secure element makes (its identity key, its firmware
//! encryption key, and a CSR that binds the two); `update` asks for a field update over the
//! unit's own certificate and opens it as the unit's bootloader would (`docs/firmware.md`).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Subcommand;
use touchmark_client::{Client, ClientConfig, Identity};
use touchmark_firmware::{Curve, SoftwareAgreementKey};
use touchmark_pki::{KeyAlgorithm, SoftwareSigner};

use crate::args::RootCaArgs;
use crate::output::{self, fields};

/// The files of a unit's directory.
const IDENTITY_KEY: &str = "identity.key.pem";
const ENCRYPTION_KEY: &str = "encryption.key.pem";
const CSR: &str = "csr.pem";
/// Written by `station provision --out DIR`.
const CHAIN: &str = "chain.pem";

/// `device` subcommands.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Make a unit's keys and CSR in a new directory, as its secure element would: a P-256
    /// identity key, a firmware encryption key (PKCS#8, as MCUboot reads it), and a CSR for the
    /// serial that carries the encryption key under the identity key's signature. Provision it
    /// with `station provision --csr DIR/csr.pem --out DIR`.
    Keygen {
        /// The unit's serial (the CSR's subject).
        #[arg(long)]
        serial: String,
        /// The directory to make; it must not exist.
        #[arg(long)]
        dir: PathBuf,
        /// The encryption key's type: the type of the release key of the product's releases.
        #[arg(long = "type", value_parser = ["x25519", "ec256"], default_value = "x25519")]
        kind: String,
    },
    /// Ask the server for the newest release of the unit's product, over the unit's own
    /// certificate (DIR/chain.pem, DIR/identity.key.pem), open it with DIR/encryption.key.pem
    /// as MCUboot would (key TLV, body, hash TLV), and write it as MCUboot installs it (header
    /// flag kept, body in plaintext). When the unit runs the newest already, nothing is
    /// written.
    Update {
        /// The unit's directory (from `device keygen` and `station provision --out`).
        #[arg(long)]
        dir: PathBuf,
        /// The version the unit runs: only a newer release is sent.
        #[arg(long)]
        current: Option<String>,
        /// Where to write the opened image.
        #[arg(long)]
        out: PathBuf,
        /// The server's URL.
        #[arg(
            long,
            env = "TOUCHMARK_SERVER",
            default_value = "https://localhost:8443"
        )]
        server: String,
        /// Which root CA to trust for the server.
        #[command(flatten)]
        trust: RootCaArgs,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `device` subcommand.
///
/// # Errors
/// When a file cannot be read or written, a key is not what it should be, the server refuses
/// or cannot be reached, or the image does not open.
pub async fn run(command: DeviceCommand) -> anyhow::Result<()> {
    match command {
        DeviceCommand::Keygen { serial, dir, kind } => keygen(&serial, &dir, &kind),
        DeviceCommand::Update {
            dir,
            current,
            out,
            server,
            trust,
            json,
        } => update(&dir, current.as_deref(), &out, server, &trust, json).await,
    }
}

fn keygen(serial: &str, dir: &Path, kind: &str) -> anyhow::Result<()> {
    touchmark_core::Serial::parse(serial).map_err(|e| anyhow::anyhow!("--serial: {e}"))?;
    let curve = if kind == "ec256" {
        Curve::P256
    } else {
        Curve::X25519
    };
    std::fs::create_dir(dir)
        .with_context(|| format!("cannot make the unit directory {}", dir.display()))?;
    let identity = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256)?;
    let encryption = SoftwareAgreementKey::generate(curve)?;
    let csr = touchmark_pki::build_csr_with(
        &identity,
        serial,
        Some(&encryption.public_key().spki_der()),
    )?;
    crate::secrets::write_secret_file(&dir.join(IDENTITY_KEY), identity.pkcs8_pem().trim_end())?;
    let encryption_pem =
        touchmark_firmware::keys::pem_encode(&encryption.pkcs8_der()?, "PRIVATE KEY");
    crate::secrets::write_secret_file(&dir.join(ENCRYPTION_KEY), encryption_pem.trim_end())?;
    std::fs::write(
        dir.join(CSR),
        touchmark_pki::pem::encode("CERTIFICATE REQUEST", &csr),
    )
    .with_context(|| format!("cannot write {}", dir.join(CSR).display()))?;
    fields(&[
        ("serial", serial.to_owned()),
        ("identity key", dir.join(IDENTITY_KEY).display().to_string()),
        (
            "encryption key",
            format!(
                "{} ({})",
                dir.join(ENCRYPTION_KEY).display(),
                encryption.public_key().kind()
            ),
        ),
        ("csr", dir.join(CSR).display().to_string()),
    ]);
    Ok(())
}

fn read(dir: &Path, name: &str) -> anyhow::Result<String> {
    let path = dir.join(name);
    std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
}

async fn update(
    dir: &Path,
    current: Option<&str>,
    out: &Path,
    server: String,
    trust: &RootCaArgs,
    json: bool,
) -> anyhow::Result<()> {
    let chain = read(dir, CHAIN).context("provision the unit first (station provision --out)")?;
    let identity = read(dir, IDENTITY_KEY)?;
    let encryption = SoftwareAgreementKey::from_pem(&read(dir, ENCRYPTION_KEY)?)
        .with_context(|| format!("{}", dir.join(ENCRYPTION_KEY).display()))?;
    let ca_path = trust.path();
    let root_ca_pem = std::fs::read_to_string(&ca_path)
        .with_context(|| format!("cannot read the root CA {}", ca_path.display()))?;
    let mut config = ClientConfig::new(server, root_ca_pem);
    config.identity = Some(Identity::new(&chain, identity.as_str()));
    let Some(image) = Client::new(config)?.device_latest_firmware(current).await? else {
        if json {
            return output::json(&serde_json::json!({ "up_to_date": true }));
        }
        println!("up to date: the unit runs the newest release");
        return Ok(());
    };
    let version = touchmark_firmware::parse(&image)
        .map(|layout| layout.header.version_string())
        .map_err(|e| anyhow::anyhow!("the server sent no MCUboot image: {e}"))?;
    let opened = match touchmark_firmware::decrypt(&image, &encryption) {
        Ok(opened) => opened,
        Err(e) => bail!(
            "the image does not open with the unit's key: {} ({e})",
            e.code()
        ),
    };
    std::fs::write(out, &opened).with_context(|| format!("cannot write {}", out.display()))?;
    let sha256 = touchmark_core::event::Sha256Hash::of(&image).to_hex();
    if json {
        return output::json(&serde_json::json!({
            "up_to_date": false,
            "version": version,
            "image_sha256": sha256,
            "out": out.display().to_string(),
        }));
    }
    fields(&[
        ("version", version),
        ("image sha256", sha256),
        ("opened", "key TLV, body and hash TLV checked".into()),
        ("written", out.display().to_string()),
    ]);
    Ok(())
}
