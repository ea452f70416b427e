//! Touchmark's audit verifier: checks a tiled transparency log with the log's public key
//! alone, and exports one as a bundle that can be checked later without the server (design.md §6).
//!
//! [`verify`] checks the checkpoint's signature, recomputes every leaf hash, tile and the root
//! from the entries ([`touchmark_tlog::tile::audit_tiles_with`]), checks that the log extends
//! the checkpoint it verified last time (kept in a state file), and replays the events to
//! report, per order, the quota, the units issued, the failed tests and the refusals, and every
//! violation, naming the entry or the tile. [`export`] downloads a log into a directory that
//! [`verify`] accepts offline. A [`UnitReceipt`] proves one unit's issuance with the key alone.
//!
//! Long steps report to a [`Progress`]; nothing here draws on a terminal.

mod error;
mod receipt;
mod remote;
mod report;
mod verify;

#[cfg(test)]
mod tests;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use touchmark_tlog::checkpoint::{Checkpoint, SignedCheckpoint};
use touchmark_tlog::note::NoteVerifier;

use crate::remote::Remote;

pub use crate::error::Error;
pub use crate::receipt::UnitReceipt;
pub use crate::report::{Report, TreeHead, Violation, ViolationKind};

/// Where a log comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A Touchmark server: its `https://` base URL (`/log/...` is appended), trusting only the
    /// root CA in the PEM file `root_ca`.
    Https {
        /// The base URL.
        url: String,
        /// The root CA that signed the server's certificate.
        root_ca: PathBuf,
    },
    /// A directory written by [`export`].
    Dir(PathBuf),
}

impl Source {
    /// `text` as a source: a URL (`https://`, or `http://`, which is then refused) names a
    /// server trusted through the root CA in `root_ca`; anything else is a directory.
    pub fn new(text: &str, root_ca: PathBuf) -> Self {
        if text.starts_with("https://") || text.starts_with("http://") {
            Self::Https {
                url: text.to_owned(),
                root_ca,
            }
        } else {
            Self::Dir(PathBuf::from(text))
        }
    }
}

/// What [`verify`] checks, with which key, and where it keeps what it learnt.
#[derive(Debug, Clone)]
pub struct Audit {
    /// The log.
    pub source: Source,
    /// The log's verifier key, obtained out of band: never from the server being audited.
    pub key: NoteVerifier,
    /// Where the last verified checkpoint is kept, to check that the log only grows.
    pub state: PathBuf,
    /// Where tiles downloaded from a server are kept between runs [default: `<state>.d`].
    pub cache: Option<PathBuf>,
}

impl Audit {
    /// The cache directory: the one given, else `<state>.d`.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache.clone().unwrap_or_else(|| {
            let mut dir = self.state.as_os_str().to_owned();
            dir.push(".d");
            PathBuf::from(dir)
        })
    }
}

/// A long step of [`verify`] or [`export`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Downloading tiles from a server before verifying them; counts files.
    Download,
    /// Recomputing the tree and replaying the events; counts entries.
    Verify,
    /// Downloading a log into a bundle; counts files.
    Export,
}

impl Step {
    /// A short name for the step.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Download => "download",
            Self::Verify => "verify",
            Self::Export => "export",
        }
    }
}

/// Where [`verify`] and [`export`] report how far they got. Each method does nothing unless
/// implemented; calls may come from several threads.
pub trait Progress: Send + Sync {
    /// `step` begins, with `total` units of work.
    fn start(&self, step: Step, total: u64) {
        let _ = (step, total);
    }

    /// `done` more units of the current step are done.
    fn advance(&self, done: u64) {
        let _ = done;
    }

    /// `step` is over.
    fn finish(&self, step: Step) {
        let _ = step;
    }
}

/// A [`Progress`] that reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {}

/// Parses a verifier key given as text, or as `@FILE` naming a file that holds one.
///
/// # Errors
/// [`Error::VerifierKeyFile`] when the file cannot be read, [`Error::VerifierKey`] when the
/// text is not a verifier key.
pub fn verifier_key(text_or_file: &str) -> Result<NoteVerifier, Error> {
    let text = match text_or_file.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file).map_err(|source| Error::VerifierKeyFile {
            path: file.into(),
            source,
        })?,
        None => text_or_file.to_owned(),
    };
    NoteVerifier::parse(text.trim()).map_err(Error::VerifierKey)
}

/// Reads the checkpoint verified by the last run, if any, and verifies it again.
fn load_state(path: &Path, key: &NoteVerifier) -> Result<Option<Checkpoint>, Error> {
    let note = match std::fs::read(path) {
        Ok(note) => note,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let signed = SignedCheckpoint::open(&note, key).map_err(|source| Error::State {
        path: path.to_owned(),
        key: key.name().to_owned(),
        source,
    })?;
    Ok(Some(signed.checkpoint().clone()))
}

/// Keeps `signed` as the last verified checkpoint: a temporary file, synced, then renamed over
/// the state file, so a crash leaves the old state or the new one.
fn save_state(path: &Path, signed: &SignedCheckpoint) -> Result<(), Error> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let failed = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Write { path, source }
    };
    let mut file = std::fs::File::create(&tmp).map_err(failed(&tmp))?;
    file.write_all(signed.note().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(failed(&tmp))?;
    std::fs::rename(&tmp, path).map_err(failed(path))
}

/// Runs the whole verification of `audit` and returns the report; violations are in the
/// report, and [`Report::verdict`] turns them into an error. When the tree verifies, its
/// checkpoint becomes the state for the next run.
///
/// # Errors
/// When the checkpoint's signature does not verify ([`Error::BadCheckpoint`]), and when the
/// log, the root CA or the state cannot be read at all.
pub async fn verify(audit: &Audit, progress: Arc<dyn Progress>) -> Result<Report, Error> {
    verify_from(audit, None, progress).await
}

/// [`verify`], with `remote` standing in for the server of an `https://` source (tests).
async fn verify_from(
    audit: &Audit,
    remote: Option<Remote>,
    progress: Arc<dyn Progress>,
) -> Result<Report, Error> {
    let key = &audit.key;
    let (remote, dir) = match (&audit.source, remote) {
        (Source::Https { .. }, Some(remote)) => (Some(remote), audit.cache_dir()),
        (Source::Https { url, root_ca }, None) => {
            (Some(Remote::https(url, root_ca)?), audit.cache_dir())
        }
        (Source::Dir(dir), _) => (None, dir.clone()),
    };
    let (note, from) = match &remote {
        Some(remote) => (
            remote.fetch("checkpoint", remote::MAX_CHECKPOINT).await?,
            remote.describe("checkpoint"),
        ),
        None => {
            let path = dir.join("checkpoint");
            let note = std::fs::read(&path).map_err(|source| Error::NoCheckpoint {
                path: path.clone(),
                source,
            })?;
            (note, path.display().to_string())
        }
    };
    let signed = SignedCheckpoint::open(&note, key).map_err(|source| Error::BadCheckpoint {
        from,
        key: key.name().to_owned(),
        source,
    })?;
    let previous = load_state(&audit.state, key)?;
    if let Some(remote) = &remote {
        let size = signed.checkpoint().size();
        remote::mirror(remote, &dir, size, Step::Download, &progress).await?;
    }

    progress.start(Step::Verify, signed.checkpoint().size());
    let checkpoint = signed.checkpoint().clone();
    let report = tokio::task::spawn_blocking({
        let progress = Arc::clone(&progress);
        move || verify::audit(&dir, &checkpoint, previous.as_ref(), &progress)
    })
    .await
    .map_err(|_| Error::Task("verification"))??;
    progress.finish(Step::Verify);
    if report.tree_verified() {
        save_state(&audit.state, &signed)?;
    }
    Ok(report)
}

/// What [`export`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    /// The directory.
    pub dir: String,
    /// The log's origin.
    pub origin: String,
    /// The size of the exported checkpoint.
    pub size: u64,
    /// Its root, base64.
    pub root: String,
    /// Tiles and bundles downloaded.
    pub files: usize,
}

/// Downloads the log of the server at `url`, trusting only the root CA in `root_ca` (its
/// checkpoint, tiles, entry bundles and verifier key), into `dir`, which must not exist or be
/// empty. The checkpoint is written last: a directory with a checkpoint is complete.
///
/// # Errors
/// When `dir` is not empty, a download or a write fails, or the server's checkpoint is not
/// signed by the server's own key.
pub async fn export(
    dir: &Path,
    url: &str,
    root_ca: &Path,
    progress: Arc<dyn Progress>,
) -> Result<Exported, Error> {
    check_empty(dir)?;
    export_from(dir, &Remote::https(url, root_ca)?, progress).await
}

fn check_empty(dir: &Path) -> Result<(), Error> {
    match std::fs::read_dir(dir).map(|mut entries| entries.next().is_none()) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::NotEmpty {
            dir: dir.to_owned(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Read {
            path: dir.to_owned(),
            source,
        }),
    }
}

/// [`export`] from `remote`.
async fn export_from(
    dir: &Path,
    remote: &Remote,
    progress: Arc<dyn Progress>,
) -> Result<Exported, Error> {
    check_empty(dir)?;
    let note = remote.fetch("checkpoint", remote::MAX_CHECKPOINT).await?;
    let key = remote.fetch("key", remote::MAX_KEY).await?;
    // The server's own key proves nothing to an auditor; it is checked here only so that a
    // server serving the wrong key, or a mangled checkpoint, fails now rather than offline.
    let verifier =
        NoteVerifier::parse(String::from_utf8_lossy(&key).trim()).map_err(Error::ServerKey)?;
    let signed =
        SignedCheckpoint::open(&note, &verifier).map_err(|source| Error::NotSelfSigned {
            from: remote.describe("checkpoint"),
            source,
        })?;
    let size = signed.checkpoint().size();
    let files = remote::mirror(remote, dir, size, Step::Export, &progress).await?;
    remote::write_atomically(
        &dir.join("log-verifier.txt"),
        format!("{verifier}\n").as_bytes(),
    )
    .await?;
    // Written last: a directory with a checkpoint is complete.
    remote::write_atomically(&dir.join("checkpoint"), &note).await?;
    Ok(Exported {
        dir: dir.display().to_string(),
        origin: signed.checkpoint().origin().to_owned(),
        size,
        root: signed.checkpoint().root().to_base64(),
        files,
    })
}
