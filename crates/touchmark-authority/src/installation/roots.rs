//! Moving a data directory from the one root of earlier versions to separate device and
//! infrastructure roots (issue 11, finding 6): `touchmark split-roots`.
//!
//! The one root stays, as the device root: the products' issuing CAs and every device
//! certificate issued so far chain to it unchanged, and the brokers and backends that trust it
//! for devices keep working. A new infrastructure root is made, with a new station CA and a new
//! server certificate under it, all with new keys. The old station CA's key is not reused: its
//! certificate, issued by the device root, stays valid and public, so anything that key signed
//! would still pass as a device.
//!
//! Stations enrolled before the split hold certificates of the old station CA. The server no
//! longer accepts them, and they no longer trust the server's new certificate: each is enrolled
//! again as a new station, with the infrastructure root. Their old certificates still chain to
//! the device root until they expire (a year after enrollment), which `docs/pki.md` says.
//!
//! The files move in one rename, so that a crash leaves either layout, never a mix: the new
//! `certs/` is written beside the old one as `certs.split/`, the old moves to `certs.single/`,
//! the new takes its place, and the old is removed. [`Installation::finish_interrupted_split`]
//! completes a move that stopped between the two renames; the keys a stopped attempt made are
//! reused by the next.

use std::path::Path;
use std::sync::Arc;

use time::OffsetDateTime;

use super::{
    Existing, Infrastructure, Installation, InstallationError, RootLayout, cert_files, io, pki,
};

/// The new `certs/`, while it is written.
const STAGING: &str = "certs.split";
/// The old `certs/`, between the two renames.
const SINGLE: &str = "certs.single";

/// Refuses a data directory whose split stopped between its two renames: it has no `certs/`.
pub(super) fn check_not_interrupted(dir: &Path) -> Result<(), InstallationError> {
    if !dir.join("certs").exists() && dir.join(STAGING).exists() {
        return Err(InstallationError::SplitInterrupted(dir.to_owned()));
    }
    Ok(())
}

/// Writes `contents` to the new file `path` and flushes it to the disk.
fn write_synced(path: &Path, contents: &str) -> Result<(), InstallationError> {
    use std::io::Write as _;
    let context = || format!("cannot write {}", path.display());
    let mut file = std::fs::File::create(path).map_err(io(context()))?;
    file.write_all(contents.as_bytes()).map_err(io(context()))?;
    file.sync_all().map_err(io(context()))
}

/// Flushes a directory's entries (the files created and renamed in it) to the disk.
fn sync_dir(dir: &Path) -> Result<(), InstallationError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("cannot sync {}", dir.display())))
}

/// The file name of one of [`cert_files`].
fn file_name(file: &str) -> &str {
    file.rsplit('/').next().unwrap_or(file)
}

impl Installation {
    /// Moves a data directory from the one root of earlier versions to separate roots (see
    /// the module documentation): its root becomes the device root, unchanged, and a new
    /// infrastructure root with a new station CA and a new server certificate (for the same
    /// hosts, under the same organization) takes over the station and server side. The log,
    /// its key and the database are not touched. Run it with no server serving the directory.
    ///
    /// # Errors
    /// [`InstallationError::AlreadySplit`] for a directory that has two roots already; a key,
    /// certificate or file that failed, with the directory left in its earlier layout (or, if
    /// it stopped between the renames, completed by
    /// [`Installation::finish_interrupted_split`]).
    pub fn split_roots(self, now: OffsetDateTime) -> Result<Self, InstallationError> {
        if self.layout == RootLayout::Split {
            return Err(InstallationError::AlreadySplit(self.dir));
        }
        let organization = self
            .device_root
            .certificate()
            .subject_organization()
            .unwrap_or_else(|| "Touchmark".to_owned());
        let hosts = self
            .server_cert
            .server_hosts()
            .map_err(pki(cert_files::SERVER))?;
        let infra = Infrastructure::create(
            self.keys.as_ref(),
            Existing::Reuse,
            &organization,
            &hosts,
            now,
        )?;

        let dir = &self.dir;
        let staging = dir.join(STAGING);
        if staging.exists() {
            // Left by an attempt that stopped before the old certs/ moved: never served.
            std::fs::remove_dir_all(&staging)
                .map_err(io(format!("cannot remove {}", staging.display())))?;
        }
        std::fs::create_dir(&staging)
            .map_err(io(format!("cannot create {}", staging.display())))?;
        for (file, pem) in [
            (
                cert_files::DEVICE_ROOT,
                self.device_root.certificate().pem(),
            ),
            (cert_files::INFRA_ROOT, infra.root.certificate().pem()),
            (cert_files::STATION_CA, infra.station_ca.certificate().pem()),
            (cert_files::SERVER, infra.server_cert.pem()),
        ] {
            write_synced(&staging.join(file_name(file)), &pem)?;
        }
        sync_dir(&staging)?;

        let (certs, single) = (dir.join("certs"), dir.join(SINGLE));
        if single.exists() {
            std::fs::remove_dir_all(&single)
                .map_err(io(format!("cannot remove {}", single.display())))?;
        }
        std::fs::rename(&certs, &single).map_err(io(format!(
            "cannot move {} to {}",
            certs.display(),
            single.display()
        )))?;
        std::fs::rename(&staging, &certs).map_err(io(format!(
            "cannot move {} to {}; run `touchmark split-roots` again to finish",
            staging.display(),
            certs.display()
        )))?;
        sync_dir(dir)?;
        // The split is done; what is left of the old directory only takes space.
        let _ = std::fs::remove_dir_all(&single);

        Ok(Self {
            layout: RootLayout::Split,
            infra_root: Arc::new(infra.root),
            station_ca: Arc::new(infra.station_ca),
            server_cert: infra.server_cert,
            server_key: infra.server_key,
            ..self
        })
    }

    /// Completes a [`Installation::split_roots`] that stopped between its two renames (the
    /// directory has `certs.split/` and no `certs/`), and removes what a completed one left
    /// behind. Reads no key. Returns whether a split was completed.
    ///
    /// # Errors
    /// [`InstallationError::Io`] when a rename or removal fails.
    pub fn finish_interrupted_split(dir: &Path) -> Result<bool, InstallationError> {
        let (certs, staging, single) = (dir.join("certs"), dir.join(STAGING), dir.join(SINGLE));
        let finished = if !certs.exists() && staging.exists() {
            std::fs::rename(&staging, &certs).map_err(io(format!(
                "cannot move {} to {}",
                staging.display(),
                certs.display()
            )))?;
            sync_dir(dir)?;
            true
        } else {
            false
        };
        if single.exists() && matches!(Self::layout_of(dir), Ok(RootLayout::Split)) {
            std::fs::remove_dir_all(&single)
                .map_err(io(format!("cannot remove {}", single.display())))?;
        }
        Ok(finished)
    }
}
