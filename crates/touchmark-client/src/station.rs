//! The station's side of the API, as the fixture PC runs it: a key made on the PC that never
//! leaves it, enrollment with a one-time token, and the station directory that keeps the key,
//! the certificate and the settings for the commands that follow.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use touchmark_core::api::{EnrollRequest, EnrollResponse, ProvisionRequest, ProvisionResponse};
use touchmark_pki::{KeyAlgorithm, SoftwareSigner, build_csr};
use zeroize::Zeroizing;

use crate::{Client, ClientConfig, ClientError, Identity};

/// A station's private key, made where it is used.
#[derive(Debug)]
pub struct StationKey(SoftwareSigner);

impl StationKey {
    /// A fresh P-256 key.
    ///
    /// # Errors
    /// [`ClientError::Key`] when it cannot be made.
    pub fn generate() -> Result<Self, ClientError> {
        SoftwareSigner::generate(KeyAlgorithm::EcdsaP256)
            .map(Self)
            .map_err(ClientError::key)
    }

    /// The key as PKCS#8 PEM, to keep on the fixture PC only.
    pub fn pkcs8_pem(&self) -> Zeroizing<String> {
        self.0.pkcs8_pem()
    }
}

/// Trades the one-time enrollment `token` and a CSR of `key` (common name `name`) for the
/// station's mTLS certificate, at the server `url` trusted through `root_ca_pem` alone. Returns
/// the server's answer and a client that authenticates as the station.
///
/// # Errors
/// [`ClientError::Key`] when the CSR cannot be made, or the server's refusal.
pub async fn enroll(
    url: &str,
    root_ca_pem: &str,
    token: String,
    key: &StationKey,
    name: &str,
) -> Result<(EnrollResponse, Client), ClientError> {
    let enrolled = certificate(url, root_ca_pem, token, key, name).await?;
    let mut config = ClientConfig::new(url, root_ca_pem);
    config.identity = Some(Identity::new(
        enrolled.certificate_pem.clone(),
        key.pkcs8_pem().to_string(),
    ));
    Ok((enrolled, Client::new(config)?))
}

/// Writes `key` to the new file `path`, readable by its owner only, and syncs it.
fn write_key(path: &Path, key: &StationKey) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = touchmark_pki::keystore::create_private_file(path)?;
    file.write_all(key.pkcs8_pem().as_bytes())?;
    file.sync_all()
}

/// The enrollment request itself: the token and a CSR of `key`, traded for the certificate.
async fn certificate(
    url: &str,
    root_ca_pem: &str,
    token: String,
    key: &StationKey,
    name: &str,
) -> Result<EnrollResponse, ClientError> {
    let csr = build_csr(&key.0, name).map_err(ClientError::key)?;
    let csr = touchmark_pki::pem::encode("CERTIFICATE REQUEST", &csr);
    let anonymous = Client::new(ClientConfig::new(url, root_ca_pem))?;
    anonymous.enroll(&EnrollRequest { token, csr }).await
}

/// `station.json` in a station directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationSettings {
    /// The server's URL.
    pub server: String,
    /// The station's id.
    pub station: String,
    /// Its factory's id.
    pub factory: String,
}

/// A station directory, as `touchmark station enroll` writes it: the private key
/// (`station.key`), the station's certificate (`station.pem`), the root CA it trusts for the
/// server (`root-ca.pem`: the installation's infrastructure root, as given to `enroll`) and the
/// settings (`station.json`).
///
/// The server named in `station.json` is where the station enrolled; [`StationDir::server`]
/// points the commands after enrollment at another URL (the server moved, or a fixture talks
/// to a replica or a test server) without rewriting the directory.
#[derive(Debug, Clone)]
pub struct StationDir {
    dir: PathBuf,
    server: Option<String>,
}

const KEY: &str = "station.key";
const CERT: &str = "station.pem";
const ROOT: &str = "root-ca.pem";
const SETTINGS: &str = "station.json";

impl StationDir {
    /// The station directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            server: None,
        }
    }

    /// Talks to the server at `url` instead of the one in `station.json` (`None` keeps that
    /// one). The URL is checked when a client is made; the directory is not changed.
    #[must_use]
    pub fn server(mut self, url: Option<String>) -> Self {
        self.server = url;
        self
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Where the private key is kept, readable by its owner only.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join(KEY)
    }

    /// Whether a station is enrolled here already (its key is here).
    pub fn is_enrolled(&self) -> bool {
        self.key_path().exists()
    }

    /// Enrolls a station into this directory. Its key is made here and never leaves the
    /// machine. The one-time `token` and the key's CSR are traded for the station's
    /// certificate at `server`, trusted through `root_ca_pem` alone; only then is anything
    /// written: the key to [`StationDir::key_path`], readable by its owner only, and the rest
    /// by [`StationDir::save`]. A refused, failed or interrupted enrollment
    /// therefore leaves the directory as it was (not even created), and a later attempt starts
    /// afresh; a failure to write removes what was written.
    ///
    /// # Errors
    /// [`ClientError::Files`] when a station is enrolled here already or a file cannot be
    /// written, [`ClientError::Key`], or the server's refusal.
    pub async fn enroll(
        &self,
        server: &str,
        root_ca_pem: &str,
        token: String,
    ) -> Result<(EnrollResponse, StationSettings), ClientError> {
        let dir = |e: String| ClientError::Files(e);
        if self.is_enrolled() {
            return Err(dir(format!(
                "{} already holds an enrolled station; choose another directory",
                self.dir.display()
            )));
        }
        // Refused now, while the token is still good.
        if self.dir.exists() && !self.dir.is_dir() {
            return Err(dir(format!("{} is not a directory", self.dir.display())));
        }
        let key = StationKey::generate()?;
        let enrolled = certificate(server, root_ca_pem, token, &key, "touchmark-station").await?;
        let created = !self.dir.exists();
        let existing: Vec<&str> = [KEY, CERT, ROOT, SETTINGS]
            .into_iter()
            .filter(|name| self.dir.join(name).exists())
            .collect();
        let written = std::fs::create_dir_all(&self.dir)
            .map_err(|e| dir(format!("cannot create {}: {e}", self.dir.display())))
            .and_then(|()| {
                write_key(&self.key_path(), &key)
                    .map_err(|e| dir(format!("cannot write {}: {e}", self.key_path().display())))
            })
            .and_then(|()| self.save(&enrolled, root_ca_pem, server));
        match written {
            Ok(settings) => Ok((enrolled, settings)),
            Err(e) => {
                // Leave the directory as it was. The token is spent: say so, so that nobody
                // retries with it.
                for name in [KEY, CERT, ROOT, SETTINGS] {
                    if !existing.contains(&name) {
                        let _ = std::fs::remove_file(self.dir.join(name));
                    }
                }
                if created {
                    let _ = std::fs::remove_dir(&self.dir);
                }
                Err(dir(format!(
                    "station {} was enrolled and its enrollment token is spent, but its files \
                     could not be kept: {e}",
                    enrolled.station
                )))
            }
        }
    }

    /// Writes what `enrolled`, the answer of `server` trusted through `root_ca_pem`, makes of
    /// this directory: the certificate, the root CA and the settings. The key is written first,
    /// by the caller.
    ///
    /// # Errors
    /// [`ClientError::Files`] when a file cannot be written.
    pub fn save(
        &self,
        enrolled: &EnrollResponse,
        root_ca_pem: &str,
        server: &str,
    ) -> Result<StationSettings, ClientError> {
        let settings = StationSettings {
            server: server.to_owned(),
            station: enrolled.station.clone(),
            factory: enrolled.factory.clone(),
        };
        let json = serde_json::to_string_pretty(&settings)
            .map_err(|e| ClientError::Files(format!("station.json: {e}")))?;
        for (name, contents) in [
            (CERT, enrolled.certificate_pem.as_str()),
            (ROOT, root_ca_pem),
            (SETTINGS, json.as_str()),
        ] {
            std::fs::write(self.dir.join(name), contents)
                .map_err(|e| ClientError::Files(format!("cannot write {name}: {e}")))?;
        }
        Ok(settings)
    }

    /// Provisions one unit as the station enrolled here: its serial, CSR (PEM, or DER, sent as
    /// base64) and test record go to `order`, and the answer's certificate, chain, device root
    /// CA and receipt are written into `out` as `certificate.pem`, `chain.pem`, `root-ca.pem`
    /// and `receipt.json`. `attestation` is the unit's secure-element certificates (PEM), for a
    /// product that requires them.
    ///
    /// # Errors
    /// [`ClientError::Files`] when the directory is not an enrolled station's or a file cannot
    /// be written, or the server's answer: see [`ClientError::refusal`].
    pub async fn provision(
        &self,
        order: &str,
        serial: &str,
        csr: &[u8],
        test: serde_json::Value,
        attestation: Option<String>,
        out: &Path,
    ) -> Result<ProvisionResponse, ClientError> {
        let csr = match std::str::from_utf8(csr) {
            Ok(text) if text.trim_start().starts_with("-----BEGIN") => text.to_owned(),
            _ => base64::engine::general_purpose::STANDARD.encode(csr),
        };
        let request = ProvisionRequest {
            serial: serial.to_owned(),
            csr,
            test,
            encryption_key: None,
            attestation,
        };
        let (client, _) = self.client()?;
        let done = client.provision(order, &request).await?;
        let receipt = serde_json::to_string_pretty(&done.receipt)
            .map_err(|e| ClientError::Files(format!("receipt.json: {e}")))?;
        let failed = |e: std::io::Error| ClientError::Files(format!("{}: {e}", out.display()));
        std::fs::create_dir_all(out).map_err(failed)?;
        for (name, contents) in [
            ("certificate.pem", done.certificate_pem.as_str()),
            ("chain.pem", &done.chain_pem),
            ("root-ca.pem", &done.root_ca_pem),
            ("receipt.json", &receipt),
        ] {
            std::fs::write(out.join(name), contents).map_err(|e| {
                ClientError::Files(format!("cannot write {}: {e}", out.join(name).display()))
            })?;
        }
        Ok(done)
    }

    /// A client that authenticates as the station enrolled here, and the station's id. It
    /// talks to the server [`StationDir::server`] set, else to the one in `station.json`.
    ///
    /// # Errors
    /// [`ClientError::Files`] when the directory is not an enrolled station's,
    /// [`ClientError::Config`] for a server URL that is not `https`.
    pub fn client(&self) -> Result<(Client, String), ClientError> {
        let read = |name: &str| {
            let path = self.dir.join(name);
            std::fs::read_to_string(&path).map_err(|e| {
                ClientError::Files(format!(
                    "cannot read {} (is {} a station directory from `touchmark station \
                     enroll`?): {e}",
                    path.display(),
                    self.dir.display()
                ))
            })
        };
        let settings: StationSettings = serde_json::from_str(&read(SETTINGS)?)
            .map_err(|e| ClientError::Files(format!("station.json is invalid: {e}")))?;
        let server = self.server.clone().unwrap_or(settings.server);
        let mut config = ClientConfig::new(server, read(ROOT)?);
        config.identity = Some(Identity::new(read(CERT)?, read(KEY)?));
        Ok((Client::new(config)?, settings.station))
    }
}
