//! What runs on the fixture PC: `station enroll` and `station provision`.

use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use serde::{Deserialize, Serialize};
use touchmark_client::{Client, ClientConfig, ClientError, Identity};
use touchmark_core::api::{EnrollRequest, ProvisionRequest};
use touchmark_pki::{KeyAlgorithm, SoftwareSigner, build_csr};

use crate::cli::{EnrollArgs, ProvisionArgs};
use crate::output::{self, fields};

/// A refusal by the server's policy: `station provision` exits with code 2.
#[derive(Debug, thiserror::Error)]
#[error("refused: {code}: {message}")]
pub struct Refused {
    /// The stable code.
    pub code: String,
    /// The server's message.
    pub message: String,
}

/// `station.json` in the station directory.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StationFile {
    server: String,
    station: String,
    factory: String,
}

const KEY: &str = "station.key";
const CERT: &str = "station.pem";
const ROOT: &str = "root-ca.pem";
const SETTINGS: &str = "station.json";

pub(crate) fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("cannot sync {}", path.display()))
}

/// Runs `station enroll`.
///
/// # Errors
/// When the directory is already enrolled, the CA cannot be read, or the server refuses.
pub async fn enroll(args: EnrollArgs) -> anyhow::Result<()> {
    let root_ca_pem = std::fs::read_to_string(&args.ca)
        .with_context(|| format!("cannot read the root CA {}", args.ca.display()))?;
    if args.dir.join(KEY).exists() {
        bail!(
            "{} already holds an enrolled station; choose another --dir",
            args.dir.display()
        );
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    // The station's key is made here and never leaves this machine: only its CSR is sent.
    let signer = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256)?;
    let csr = touchmark_pki::pem::encode(
        "CERTIFICATE REQUEST",
        &build_csr(&signer, "touchmark-station")?,
    );
    let key_path = args.dir.join(KEY);
    write_private(&key_path, signer.pkcs8_pem().as_bytes())?;
    let client = Client::new(ClientConfig::new(args.server.clone(), root_ca_pem.clone()))?;
    let token = match (args.token, &args.token_file) {
        (Some(token), _) => token,
        (None, Some(path)) => crate::secrets::read_secret_file(path)?,
        (None, None) => bail!("give the enrollment token with --token or --token-file"),
    };
    let enrolled = match client.enroll(&EnrollRequest { token, csr }).await {
        Ok(enrolled) => enrolled,
        Err(e) => {
            // No certificate: the key is useless, and a later attempt makes a new one.
            let _ = std::fs::remove_file(&key_path);
            return Err(e.into());
        }
    };
    std::fs::write(args.dir.join(CERT), &enrolled.certificate_pem)
        .context("cannot write station.pem")?;
    std::fs::write(args.dir.join(ROOT), &root_ca_pem).context("cannot write root-ca.pem")?;
    let settings = StationFile {
        server: args.server,
        station: enrolled.station.clone(),
        factory: enrolled.factory.clone(),
    };
    std::fs::write(
        args.dir.join(SETTINGS),
        serde_json::to_string_pretty(&settings)?,
    )
    .context("cannot write station.json")?;
    if args.json {
        return output::json(&settings);
    }
    println!(
        "Enrolled station {} of factory {}.",
        enrolled.station, enrolled.factory
    );
    fields(&[
        ("directory", args.dir.display().to_string()),
        ("server", settings.server),
    ]);
    Ok(())
}

/// A client that authenticates as the station enrolled in `dir`.
///
/// # Errors
/// When the directory is not an enrolled station's.
pub fn station_client(dir: &Path) -> anyhow::Result<(Client, String)> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).with_context(|| {
            format!(
                "cannot read {} (is {} a station directory from `touchmark station enroll`?)",
                dir.join(name).display(),
                dir.display()
            )
        })
    };
    let settings: StationFile =
        serde_json::from_str(&read(SETTINGS)?).context("station.json is invalid")?;
    let mut config = ClientConfig::new(settings.server, read(ROOT)?);
    config.identity = Some(Identity::new(read(CERT)?, read(KEY)?));
    Ok((Client::new(config)?, settings.station))
}

/// Reads a CSR file: PEM is sent as is, DER as base64.
fn read_csr(path: &Path) -> anyhow::Result<String> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read the CSR {}", path.display()))?;
    if bytes.len() > 64 * 1024 {
        bail!("the CSR {} is larger than 64 KiB", path.display());
    }
    Ok(match std::str::from_utf8(&bytes) {
        Ok(text) if text.trim_start().starts_with("-----BEGIN") => text.to_owned(),
        _ => base64::engine::general_purpose::STANDARD.encode(&bytes),
    })
}

/// Runs `station provision`.
///
/// # Errors
/// [`Refused`] when the server's policy refuses the unit; any other error otherwise.
pub async fn provision(args: ProvisionArgs) -> anyhow::Result<()> {
    let csr = read_csr(&args.csr)?;
    let test_text = std::fs::read_to_string(&args.test)
        .with_context(|| format!("cannot read the test record {}", args.test.display()))?;
    let test: serde_json::Value = serde_json::from_str(&test_text)
        .with_context(|| format!("the test record {} is not JSON", args.test.display()))?;
    let (client, _) = station_client(&args.dir)?;
    let request = ProvisionRequest {
        serial: args.serial.clone(),
        csr,
        test,
    };
    let done = match client.provision(&args.order, &request).await {
        Ok(done) => done,
        Err(ClientError::Api { body, .. })
            if touchmark_core::code::ErrorCode::from_wire(&body.code)
                .is_some_and(|c| c.is_refusal()) =>
        {
            if args.json {
                output::json(&body)?;
            }
            return Err(Refused {
                code: body.code,
                message: body.message,
            }
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let write = |name: &str, contents: &str| {
        std::fs::write(args.out.join(name), contents)
            .with_context(|| format!("cannot write {}", args.out.join(name).display()))
    };
    write("certificate.pem", &done.certificate_pem)?;
    write("chain.pem", &done.chain_pem)?;
    write("root-ca.pem", &done.root_ca_pem)?;
    write(
        "receipt.json",
        &serde_json::to_string_pretty(&done.receipt)?,
    )?;
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
