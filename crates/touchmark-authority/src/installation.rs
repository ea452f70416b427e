//! A Touchmark installation on disk: the data directory that `touchmark init` creates and
//! `touchmark serve` opens.
//!
//! ```text
//! DATA/                       0700: its owner's alone
//!   touchmark.db              SQLite database (WAL), 0600
//!   serve.lock                held by the one `touchmark serve` of a SQLite data directory
//!   keys/                     private keys, encrypted under the passphrase (0700, files 0600)
//!   certs/device-root-ca.pem  device root CA: anchors the products' issuing CAs, and so every
//!                             device certificate; what a device's relying party trusts
//!   certs/infra-root-ca.pem   infrastructure root CA: anchors the station CA and the server's
//!                             TLS certificate; what stations and admins trust for the server
//!   certs/station-ca.pem      station CA, under the infrastructure root: issues the stations'
//!                             mTLS client certificates
//!   certs/server.pem          the server's TLS certificate, under the infrastructure root
//!   log-verifier.txt          the audit log's verifier key (C2SP signed-note), for auditors
//!   certs/device-root-ca.offline  present when the device root's key is kept offline
//!                             (`init --root-cert`): no `root-ca` key; products' CAs are
//!                             signed elsewhere (`ca csr`, `ca install`)
//! ```
//!
//! Two roots keep the hierarchies apart (issue 11, finding 6): a broker that trusts the device
//! root for its devices cannot be handed a station's certificate, or the server's, as a device.
//! A data directory made before the split has one root, `certs/root-ca.pem`, over the
//! products' CAs, the station CA and the server alike ([`RootLayout::Single`]). It still
//! opens and serves; [`Installation::split_roots`] (`touchmark split-roots`) moves it to the
//! two roots, keeping its root as the device root.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::{Duration, OffsetDateTime};
use touchmark_pki::{
    CaIssuer, Certificate, KeyAlgorithm, KeyProvider, KeyStore, Passphrase, PkiError, Signer,
    Subject, create_intermediate_ca, create_root_ca, issue_server_cert,
};

use crate::secrets::serial_number;

mod backup;
mod doctor;
mod guard;
mod roots;

pub use backup::{BackupFile, BackupManifest, MANIFEST};
pub use doctor::{Check, Status};
pub use guard::{DataDirLock, LOCK_FILE};

/// The configuration file in a data directory, written by `touchmark init`.
pub const CONFIG_FILE: &str = "touchmark.toml";

/// Key names inside the key store.
pub mod key_names {
    /// The device root CA's key: the single root's, in a data directory from before the split,
    /// which becomes the device root when it is split.
    pub const ROOT_CA: &str = "root-ca";
    /// The infrastructure root CA's key.
    pub const INFRA_ROOT_CA: &str = "infra-root-ca";
    /// The station CA's key, under the infrastructure root.
    pub const INFRA_STATION_CA: &str = "infra-station-ca";
    /// The server's TLS key, certified by the infrastructure root.
    pub const INFRA_SERVER_TLS: &str = "infra-server-tls";
    /// The station CA's key in a single-root data directory (from before the split). A split
    /// leaves it unused: keys are never replaced.
    pub const STATION_CA: &str = "station-ca";
    /// The server's TLS key in a single-root data directory (from before the split).
    pub const SERVER_TLS: &str = "server-tls";
    /// The audit log's Ed25519 signing key.
    pub const LOG: &str = "log";

    /// A product's issuing CA key.
    pub fn product(id: &touchmark_core::ProductId) -> String {
        format!("product-{}", id.as_str().to_ascii_lowercase())
    }
}

/// The certificate files of a data directory, relative to it.
pub mod cert_files {
    /// The device root CA (split layout).
    pub const DEVICE_ROOT: &str = "certs/device-root-ca.pem";
    /// The infrastructure root CA (split layout).
    pub const INFRA_ROOT: &str = "certs/infra-root-ca.pem";
    /// The one root of a data directory from before the split.
    pub const SINGLE_ROOT: &str = "certs/root-ca.pem";
    /// The station CA.
    pub const STATION_CA: &str = "certs/station-ca.pem";
    /// The server's TLS certificate.
    pub const SERVER: &str = "certs/server.pem";
    /// Present when the device root's key is offline: the installation holds its certificate
    /// alone.
    pub const DEVICE_ROOT_OFFLINE: &str = "certs/device-root-ca.offline";
}

/// The device root CA: with its key in the installation's key provider, or offline, its key
/// kept elsewhere (`touchmark init --root-cert`), so that it signs nothing here and each
/// product's issuing CA certificate is signed by it elsewhere and installed.
#[derive(Debug, Clone)]
pub enum DeviceRoot {
    /// Its key is in the key provider.
    Online(Arc<CaIssuer>),
    /// Its key is elsewhere: only its certificate is here.
    Offline(Arc<Certificate>),
}

impl DeviceRoot {
    /// The root's certificate.
    pub fn certificate(&self) -> &Certificate {
        match self {
            Self::Online(issuer) => issuer.certificate(),
            Self::Offline(cert) => cert,
        }
    }

    /// The root as an issuer, when its key is here.
    pub fn issuer(&self) -> Option<&Arc<CaIssuer>> {
        match self {
            Self::Online(issuer) => Some(issuer),
            Self::Offline(_) => None,
        }
    }
}

/// How a data directory's roots are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RootLayout {
    /// Two roots: the device root over the products' issuing CAs, and the infrastructure root
    /// over the station CA and the server's TLS certificate.
    Split,
    /// One root over everything: a data directory made before the split. A broker that trusts
    /// it for devices also accepts a station's certificate (issue 11, finding 6); it serves
    /// until it is split with [`Installation::split_roots`].
    Single,
}

/// Why an installation could not be created or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallationError {
    /// The directory already holds an installation.
    #[error("{0} already holds a Touchmark installation; choose another --data directory")]
    AlreadyInitialized(PathBuf),
    /// The directory holds no installation.
    #[error("{0} holds no Touchmark installation; run `touchmark init --data {0}` first")]
    NotInitialized(PathBuf),
    /// The passphrase does not open the key store.
    #[error("the key passphrase is wrong: it does not open {0}")]
    WrongPassphrase(PathBuf),
    /// A key or certificate failed.
    #[error("{context}: {source}")]
    Pki {
        /// What was being done.
        context: String,
        /// The cause.
        source: PkiError,
    },
    /// The database holds nothing: no installation was set up in it.
    #[error(
        "the database holds no Touchmark installation: run `touchmark init` for it first (a mistyped database name reaches an empty one)"
    )]
    DatabaseEmpty,
    /// The database belongs to another installation: another root CA and log key.
    #[error(
        "the database belongs to another installation (its log key is {theirs}); this data directory's log key is {ours}: point each installation at its own database"
    )]
    DatabaseOfAnother {
        /// This installation's log verifier key.
        ours: String,
        /// The database owner's log verifier key.
        theirs: String,
    },
    /// The database holds records that no installation claimed, and its log does not prove
    /// that they are this installation's.
    #[error(
        "the database holds records no installation claimed, and its log is not signed with this data directory's log key ({ours}); refusing to write into it"
    )]
    DatabaseUnclaimed {
        /// This installation's log verifier key.
        ours: String,
    },
    /// Another process serves this data directory: a SQLite one serves one process at a
    /// time.
    #[error(
        "{} is already served by another `touchmark serve`{}: a SQLite data directory serves one process at a time; stop that one first, or keep the records in PostgreSQL to run several replicas",
        .dir.display(),
        holder_text(.holder)
    )]
    InUse {
        /// The data directory.
        dir: PathBuf,
        /// The process holding it, when its lock file says.
        holder: Option<u32>,
    },
    /// A path in the data directory is open to other users.
    #[error(
        "{} is open to other users (mode {mode:03o}), and holds keys or test records: run `{fix}`",
        .path.display()
    )]
    NotPrivate {
        /// The path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// The command that makes it private.
        fix: String,
    },
    /// A directory to write a backup or a restored installation into holds something.
    #[error("{} is not empty: refusing to overwrite it; choose a new directory", .0.display())]
    NotEmpty(PathBuf),
    /// A backup could not be taken, or is incomplete or damaged.
    #[error("{0}")]
    Backup(String),
    /// The data directory has its two roots already.
    #[error("{0} has separate device and infrastructure roots already; there is nothing to split")]
    AlreadySplit(PathBuf),
    /// A `touchmark split-roots` stopped halfway: the directory has no `certs/` until it is run
    /// again.
    #[error(
        "{} holds an interrupted `touchmark split-roots` (certs.split/ without certs/): run `touchmark split-roots --data {}` again to finish it",
        .0.display(),
        .0.display()
    )]
    SplitInterrupted(PathBuf),
    /// The database could not be read or written.
    #[error("the database: {0}")]
    Store(#[from] touchmark_store::StoreError),
    /// A file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn holder_text(holder: &Option<u32>) -> String {
    holder
        .map(|p| format!(" (process {p})"))
        .unwrap_or_default()
}

fn pki(context: impl Into<String>) -> impl FnOnce(PkiError) -> InstallationError {
    let context = context.into();
    move |source| InstallationError::Pki { context, source }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> InstallationError {
    let context = context.into();
    move |source| InstallationError::Io { context, source }
}

/// What `init` needs to know.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The organization named in the CA certificates.
    pub organization: String,
    /// DNS names and IP addresses the server's TLS certificate covers.
    pub hosts: Vec<String>,
    /// The audit log's origin line (its key name), such as `touchmark.example.com/log`.
    pub log_origin: String,
    /// The device root's certificate when its key stays offline (`--root-cert`): no root key is
    /// made, and products' issuing CAs are signed elsewhere. `None` makes a root and its key.
    pub offline_root: Option<Certificate>,
}

/// Checks a device root given by `init --root-cert`: a self-issued CA certificate fit to sign
/// CAs and CRLs, valid at `now`.
fn check_offline_root(cert: &Certificate, now: OffsetDateTime) -> Result<(), InstallationError> {
    let refuse = |why: String| InstallationError::Pki {
        context: "the device root certificate (--root-cert)".into(),
        source: PkiError::InvalidCertificate(why),
    };
    if !cert.is_issued_by(cert) {
        return Err(refuse("not a self-signed root certificate".into()));
    }
    // Any CA whose certificate it issued passes the same checks as one installed later.
    touchmark_pki::check_issued_ca(&cert.pem(), "", cert.spki_der(), cert, now)
        .map(|_| ())
        .map_err(|e| refuse(e.to_string()))
}

/// An opened installation: paths, keys and CA certificates.
#[derive(Debug)]
pub struct Installation {
    dir: PathBuf,
    keys: Arc<dyn KeyProvider>,
    layout: RootLayout,
    device_root: DeviceRoot,
    /// The same issuer as `device_root` in the [`RootLayout::Single`] layout.
    infra_root: Arc<CaIssuer>,
    station_ca: Arc<CaIssuer>,
    server_cert: Certificate,
    server_key: Arc<dyn Signer>,
    log_key: Arc<dyn Signer>,
    log_verifier: touchmark_tlog::note::NoteVerifier,
}

fn write_file(path: &Path, contents: &str) -> Result<(), InstallationError> {
    std::fs::write(path, contents).map_err(io(format!("cannot write {}", path.display())))
}

fn read_cert(path: &Path) -> Result<Certificate, InstallationError> {
    let pem =
        std::fs::read_to_string(path).map_err(io(format!("cannot read {}", path.display())))?;
    Certificate::from_pem(&pem).map_err(pki(format!("{} is not a certificate", path.display())))
}

/// Whether [`Infrastructure::create`] may take up keys that are there already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Existing {
    /// No: a new installation makes every key, and a name that is taken is an error.
    Refuse,
    /// Yes: a split that stopped made them, and nothing used them (keys are never replaced,
    /// so its retry cannot make them again).
    Reuse,
}

/// The P-256 key named `name`, made now, or loaded when `existing` allows and it is there.
fn p256_key(
    keys: &dyn KeyProvider,
    name: &str,
    existing: Existing,
) -> Result<Arc<dyn Signer>, PkiError> {
    if existing == Existing::Reuse && keys.contains(name) {
        keys.load(name)
    } else {
        keys.generate(name, KeyAlgorithm::EcdsaP256)
    }
}

/// The infrastructure hierarchy: its root, the station CA under it, and the server's TLS
/// certificate under it.
struct Infrastructure {
    root: CaIssuer,
    station_ca: CaIssuer,
    server_cert: Certificate,
    server_key: Arc<dyn Signer>,
}

impl Infrastructure {
    /// Makes the infrastructure hierarchy for `organization`, its server certificate
    /// covering `hosts`, with its keys in `keys` under the `INFRA_*` names.
    fn create(
        keys: &dyn KeyProvider,
        existing: Existing,
        organization: &str,
        hosts: &[String],
        now: OffsetDateTime,
    ) -> Result<Self, InstallationError> {
        let start = now - Duration::hours(1);
        let root_key = p256_key(keys, key_names::INFRA_ROOT_CA, existing)
            .map_err(pki("infrastructure root CA key"))?;
        let root_cert = create_root_ca(
            root_key.as_ref(),
            &Subject {
                organization: organization.to_owned(),
                common_name: format!("{organization} Infrastructure Root CA"),
            },
            start,
            now + Duration::days(365 * 30),
            serial_number(),
        )
        .map_err(pki("infrastructure root CA certificate"))?;
        let root = CaIssuer::new(root_cert, root_key).map_err(pki("infrastructure root CA"))?;

        let station_key =
            p256_key(keys, key_names::INFRA_STATION_CA, existing).map_err(pki("station CA key"))?;
        let station_cert = create_intermediate_ca(
            &root,
            station_key.public_key_spki(),
            &Subject {
                organization: organization.to_owned(),
                common_name: format!("{organization} Station CA"),
            },
            start,
            now + Duration::days(365 * 10),
            serial_number(),
        )
        .map_err(pki("station CA certificate"))?;
        let station_ca = CaIssuer::new(station_cert, station_key).map_err(pki("station CA"))?;

        let server_key =
            p256_key(keys, key_names::INFRA_SERVER_TLS, existing).map_err(pki("server TLS key"))?;
        let server_cert = issue_server_cert(
            &root,
            server_key.public_key_spki(),
            hosts,
            start,
            now + Duration::days(825),
            serial_number(),
        )
        .map_err(pki("server TLS certificate"))?;
        Ok(Self {
            root,
            station_ca,
            server_cert,
            server_key,
        })
    }
}

impl Installation {
    /// The database file.
    pub fn database_path(dir: &Path) -> PathBuf {
        dir.join("touchmark.db")
    }

    /// Creates a new installation in `dir`, with its keys encrypted under `passphrase` in
    /// `dir/keys`: the device root CA, the infrastructure root CA with the station CA and the
    /// server's TLS certificate under it, and the log key. Refuses a directory that already
    /// holds one.
    ///
    /// # Errors
    /// [`InstallationError`] naming the step that failed.
    pub fn init(
        dir: &Path,
        passphrase: &Passphrase,
        options: &InitOptions,
        now: OffsetDateTime,
    ) -> Result<Self, InstallationError> {
        Self::check_new(dir)?;
        let keys = KeyStore::create(&dir.join("keys"), passphrase)
            .map_err(pki("cannot create the key store"))?;
        Self::create(dir, Arc::new(keys), options, now)
    }

    /// Creates a new installation in `dir` whose keys live in `keys`: the certificates and the
    /// log's verifier key go to `dir`, every private key is made inside the provider.
    ///
    /// # Errors
    /// [`InstallationError`] naming the step that failed.
    pub fn init_with(
        dir: &Path,
        keys: Arc<dyn KeyProvider>,
        options: &InitOptions,
        now: OffsetDateTime,
    ) -> Result<Self, InstallationError> {
        Self::check_new(dir)?;
        Self::create(dir, keys, options, now)
    }

    fn create(
        dir: &Path,
        keys: Arc<dyn KeyProvider>,
        options: &InitOptions,
        now: OffsetDateTime,
    ) -> Result<Self, InstallationError> {
        // The directory holds the keys and every test record: its owner's alone (finding 7),
        // even when it existed before.
        touchmark_pki::keystore::create_private_dir(dir).map_err(io(format!(
            "cannot create {} for its owner alone",
            dir.display()
        )))?;
        std::fs::create_dir_all(dir.join("certs"))
            .map_err(io(format!("cannot create {}", dir.join("certs").display())))?;
        let org = options.organization.clone();

        let device_root = match &options.offline_root {
            Some(cert) => {
                check_offline_root(cert, now)?;
                DeviceRoot::Offline(Arc::new(cert.clone()))
            }
            None => {
                let root_key = keys
                    .generate(key_names::ROOT_CA, KeyAlgorithm::EcdsaP256)
                    .map_err(pki("device root CA key"))?;
                let root_subject = Subject {
                    organization: org.clone(),
                    common_name: format!("{org} Device Root CA"),
                };
                let root_cert = create_root_ca(
                    root_key.as_ref(),
                    &root_subject,
                    now - Duration::hours(1),
                    now + Duration::days(365 * 30),
                    serial_number(),
                )
                .map_err(pki("device root CA certificate"))?;
                DeviceRoot::Online(Arc::new(
                    CaIssuer::new(root_cert, root_key).map_err(pki("device root CA"))?,
                ))
            }
        };
        let infra =
            Infrastructure::create(keys.as_ref(), Existing::Refuse, &org, &options.hosts, now)?;

        let log_key = keys
            .generate(key_names::LOG, KeyAlgorithm::Ed25519)
            .map_err(pki("log key"))?;

        write_file(
            &dir.join(cert_files::DEVICE_ROOT),
            &device_root.certificate().pem(),
        )?;
        if let DeviceRoot::Offline(_) = device_root {
            write_file(
                &dir.join(cert_files::DEVICE_ROOT_OFFLINE),
                "The device root's key is kept offline: this installation holds its certificate \
                 alone. Products' issuing CAs are signed elsewhere (touchmark ca csr, ca install).\n",
            )?;
        }
        write_file(
            &dir.join(cert_files::INFRA_ROOT),
            &infra.root.certificate().pem(),
        )?;
        write_file(
            &dir.join(cert_files::STATION_CA),
            &infra.station_ca.certificate().pem(),
        )?;
        write_file(&dir.join(cert_files::SERVER), &infra.server_cert.pem())?;
        let log_public: [u8; 32] =
            log_key
                .public_key_raw()
                .try_into()
                .map_err(|_| InstallationError::Pki {
                    context: "log key".into(),
                    source: PkiError::InvalidParameter("an Ed25519 public key has 32 bytes".into()),
                })?;
        let verifier =
            touchmark_tlog::note::NoteVerifier::from_public_key(&options.log_origin, &log_public)
                .map_err(|e| InstallationError::Pki {
                context: format!("log origin `{}`", options.log_origin),
                source: PkiError::InvalidParameter(e.to_string()),
            })?;
        write_file(&dir.join("log-verifier.txt"), &format!("{verifier}\n"))?;
        Ok(Self {
            dir: dir.to_owned(),
            keys,
            layout: RootLayout::Split,
            device_root,
            infra_root: Arc::new(infra.root),
            station_ca: Arc::new(infra.station_ca),
            server_cert: infra.server_cert,
            server_key: infra.server_key,
            log_key,
            log_verifier: verifier,
        })
    }

    /// Refuses a directory that holds an installation's keys, certificates or database already.
    fn check_new(dir: &Path) -> Result<(), InstallationError> {
        if [
            "keys",
            cert_files::DEVICE_ROOT,
            cert_files::INFRA_ROOT,
            cert_files::SINGLE_ROOT,
        ]
        .iter()
        .any(|p| dir.join(p).exists())
            || Self::database_path(dir).exists()
        {
            return Err(InstallationError::AlreadyInitialized(dir.to_owned()));
        }
        Ok(())
    }

    /// Opens an installation, decrypting its keys with `passphrase`, in either layout
    /// ([`Installation::layout`]).
    ///
    /// # Errors
    /// [`InstallationError::NotInitialized`], [`InstallationError::WrongPassphrase`],
    /// [`InstallationError::SplitInterrupted`], or the file or key that failed, such as a
    /// station CA or server certificate that its layout's root did not issue.
    pub fn open(dir: &Path, passphrase: &Passphrase) -> Result<Self, InstallationError> {
        if !dir.join("keys").exists() {
            return Err(InstallationError::NotInitialized(dir.to_owned()));
        }
        roots::check_not_interrupted(dir)?;
        let keys = KeyStore::open(&dir.join("keys"), passphrase).map_err(|e| match e {
            PkiError::WrongPassphrase => InstallationError::WrongPassphrase(dir.join("keys")),
            other => InstallationError::Pki {
                context: "cannot open the key store".into(),
                source: other,
            },
        })?;
        Self::load(dir, Arc::new(keys))
    }

    /// Opens an installation whose private keys live in `keys` (a hardware module, or any
    /// provider other than the data directory's encrypted key store), in either layout. Every
    /// key is loaded and checked against its certificate here, so a provider without one of
    /// them, or with another key under its name, fails now, before anything serves.
    ///
    /// # Errors
    /// As [`Installation::open`], with the provider's error for a key it cannot give.
    pub fn open_with(dir: &Path, keys: Arc<dyn KeyProvider>) -> Result<Self, InstallationError> {
        roots::check_not_interrupted(dir)?;
        Self::layout_of(dir)?;
        Self::load(dir, keys)
    }

    /// Which layout the certificates in `dir` have: [`RootLayout::Split`] when it has an
    /// infrastructure root, [`RootLayout::Single`] when it has only the one root of the
    /// earlier layout.
    ///
    /// # Errors
    /// [`InstallationError::NotInitialized`] when it has neither.
    pub fn layout_of(dir: &Path) -> Result<RootLayout, InstallationError> {
        if dir.join(cert_files::INFRA_ROOT).exists() {
            Ok(RootLayout::Split)
        } else if dir.join(cert_files::SINGLE_ROOT).exists() {
            Ok(RootLayout::Single)
        } else {
            Err(InstallationError::NotInitialized(dir.to_owned()))
        }
    }

    /// The root a client of the server in `dir` trusts: the infrastructure root, or the one
    /// root of a data directory from before the split. Reads no key.
    pub fn server_root_path(dir: &Path) -> PathBuf {
        match Self::layout_of(dir) {
            Ok(RootLayout::Single) => dir.join(cert_files::SINGLE_ROOT),
            _ => dir.join(cert_files::INFRA_ROOT),
        }
    }

    /// The root a relying party of the devices trusts: the device root, or the one root of a
    /// data directory from before the split. Reads no key.
    pub fn device_root_path(dir: &Path) -> PathBuf {
        match Self::layout_of(dir) {
            Ok(RootLayout::Single) => dir.join(cert_files::SINGLE_ROOT),
            _ => dir.join(cert_files::DEVICE_ROOT),
        }
    }

    /// Loads the certificates of `dir` with their keys from `keys`.
    fn load(dir: &Path, keys: Arc<dyn KeyProvider>) -> Result<Self, InstallationError> {
        let layout = Self::layout_of(dir)?;
        let issuer = |file: &str, key: &str, what: &str| {
            let signer = keys.load(key).map_err(pki(format!("{what} key")))?;
            CaIssuer::new(read_cert(&dir.join(file))?, signer).map_err(pki(what.to_owned()))
        };
        let (device_root, infra_root, station_key, server_key) = match layout {
            RootLayout::Split => (
                if dir.join(cert_files::DEVICE_ROOT_OFFLINE).exists() {
                    DeviceRoot::Offline(Arc::new(read_cert(&dir.join(cert_files::DEVICE_ROOT))?))
                } else {
                    DeviceRoot::Online(Arc::new(issuer(
                        cert_files::DEVICE_ROOT,
                        key_names::ROOT_CA,
                        "device root CA",
                    )?))
                },
                Arc::new(issuer(
                    cert_files::INFRA_ROOT,
                    key_names::INFRA_ROOT_CA,
                    "infrastructure root CA",
                )?),
                key_names::INFRA_STATION_CA,
                key_names::INFRA_SERVER_TLS,
            ),
            RootLayout::Single => {
                let root = Arc::new(issuer(
                    cert_files::SINGLE_ROOT,
                    key_names::ROOT_CA,
                    "root CA",
                )?);
                (
                    DeviceRoot::Online(Arc::clone(&root)),
                    root,
                    key_names::STATION_CA,
                    key_names::SERVER_TLS,
                )
            }
        };
        let station_ca = issuer(cert_files::STATION_CA, station_key, "station CA")?;
        let server_key = keys.load(server_key).map_err(pki("server TLS key"))?;
        let server_cert = read_cert(&dir.join(cert_files::SERVER))?;
        if server_cert.spki_der() != server_key.public_key_spki() {
            return Err(InstallationError::Pki {
                context: cert_files::SERVER.into(),
                source: PkiError::KeyMismatch,
            });
        }
        // A station CA or server certificate of the other hierarchy (a file copied from
        // elsewhere, a half-done move) would have clients trust what the layout says they
        // do not.
        for (file, cert) in [
            (cert_files::STATION_CA, station_ca.certificate()),
            (cert_files::SERVER, &server_cert),
        ] {
            if !cert.is_issued_by(infra_root.certificate()) {
                return Err(InstallationError::Pki {
                    context: file.into(),
                    source: PkiError::InvalidCertificate(format!(
                        "not issued by the root that anchors the server ({})",
                        Self::server_root_path(dir).display()
                    )),
                });
            }
        }
        let log_key = keys.load(key_names::LOG).map_err(pki("log key"))?;
        let verifier_path = dir.join("log-verifier.txt");
        let text = std::fs::read_to_string(&verifier_path)
            .map_err(io(format!("cannot read {}", verifier_path.display())))?;
        let log_verifier = touchmark_tlog::note::NoteVerifier::parse(text.trim()).map_err(|e| {
            InstallationError::Pki {
                context: format!("{} is not a verifier key", verifier_path.display()),
                source: PkiError::InvalidParameter(e.to_string()),
            }
        })?;
        if log_verifier.public_key().as_slice() != log_key.public_key_raw() {
            return Err(InstallationError::Pki {
                context: "log-verifier.txt".into(),
                source: PkiError::KeyMismatch,
            });
        }
        Ok(Self {
            dir: dir.to_owned(),
            keys,
            layout,
            device_root,
            infra_root,
            station_ca: Arc::new(station_ca),
            server_cert,
            server_key,
            log_key,
            log_verifier,
        })
    }

    /// Claims `store` for this installation, as `touchmark init` does: from now on a server of
    /// another installation refuses it.
    ///
    /// # Errors
    /// [`InstallationError::DatabaseOfAnother`] if another installation claimed it first.
    pub async fn claim(
        &self,
        store: &dyn touchmark_store::Store,
        now: OffsetDateTime,
    ) -> Result<(), InstallationError> {
        let ours = self.log_verifier.to_string();
        let owner = store.claim(&ours, now).await?;
        if owner != ours {
            return Err(InstallationError::DatabaseOfAnother {
                ours,
                theirs: owner,
            });
        }
        Ok(())
    }

    /// Checks, before anything is written, that `store` is this installation's database
    /// (finding 3 of the fault review): claimed by it, or holding a log signed with its key, or
    /// (`own_file`) the SQLite file inside its own data directory, from before databases were
    /// claimed. A database it may use but that is not claimed yet is claimed now.
    ///
    /// # Errors
    /// [`InstallationError::DatabaseEmpty`], [`InstallationError::DatabaseOfAnother`] or
    /// [`InstallationError::DatabaseUnclaimed`].
    pub async fn check_database(
        &self,
        store: &dyn touchmark_store::Store,
        own_file: bool,
        now: OffsetDateTime,
    ) -> Result<(), InstallationError> {
        let ours = self.log_verifier.to_string();
        match store.owner().await? {
            Some(owner) if owner == ours => return Ok(()),
            Some(owner) => {
                return Err(InstallationError::DatabaseOfAnother {
                    ours,
                    theirs: owner,
                });
            }
            None => {}
        }
        if store.is_empty().await? {
            return Err(InstallationError::DatabaseEmpty);
        }
        let signed_by_us = match store.log_state().await? {
            Some(state) => touchmark_tlog::checkpoint::SignedCheckpoint::open(
                state.note.as_bytes(),
                &self.log_verifier,
            )
            .is_ok(),
            None => false,
        };
        if !(own_file || signed_by_us) {
            return Err(InstallationError::DatabaseUnclaimed { ours });
        }
        self.claim(store, now).await
    }

    /// The audit log's Ed25519 signing key.
    pub fn log_key(&self) -> &Arc<dyn Signer> {
        &self.log_key
    }

    /// The audit log's verifier key (its name is the log's origin).
    pub fn log_verifier(&self) -> &touchmark_tlog::note::NoteVerifier {
        &self.log_verifier
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the installation's keys live.
    pub fn keys(&self) -> &Arc<dyn KeyProvider> {
        &self.keys
    }

    /// How the roots are laid out: two, or the one of a data directory from before the split.
    pub fn layout(&self) -> RootLayout {
        self.layout
    }

    /// The device root CA: it signs the products' issuing CAs, here or (offline) elsewhere. In
    /// the [`RootLayout::Single`] layout it is also [`Installation::infra_root`].
    pub fn device_root(&self) -> &DeviceRoot {
        &self.device_root
    }

    /// The infrastructure root CA: it signs the station CA and the server's TLS certificate,
    /// and clients of the server trust it.
    pub fn infra_root(&self) -> &Arc<CaIssuer> {
        &self.infra_root
    }

    /// The station CA.
    pub fn station_ca(&self) -> &Arc<CaIssuer> {
        &self.station_ca
    }

    /// The server's TLS certificate chain (leaf only: the infrastructure root is the client's
    /// anchor).
    pub fn server_cert(&self) -> &Certificate {
        &self.server_cert
    }

    /// The server's TLS key.
    pub fn server_key(&self) -> &Arc<dyn Signer> {
        &self.server_key
    }
}
