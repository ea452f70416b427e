//! Fetching a log's public endpoints (C2SP tlog-tiles under `/log/`) over HTTPS, trusting only
//! the given root CA, and mirroring its tiles into a directory laid out like the URL space.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustls::RootCertStore;
use rustls::crypto::aws_lc_rs;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use touchmark_tlog::hash::HASH_SIZE;
use touchmark_tlog::tile::{MAX_ENTRY_SIZE, Tile, new_entry_bundles, tiles_for_size};

use crate::{Error, Progress, Step};

/// The most a checkpoint note may hold.
pub(crate) const MAX_CHECKPOINT: usize = 1 << 16;
/// The most a verifier key may hold.
pub(crate) const MAX_KEY: usize = 4096;
/// Requests in flight while mirroring.
const CONCURRENCY: usize = 16;

/// Where a log's `/log/...` files come from.
#[derive(Debug, Clone)]
pub(crate) enum Remote {
    /// A Touchmark server: `base` has no trailing `/`, and `/log/<path>` is appended.
    Https {
        /// The HTTP client, trusting only the given root CA.
        client: reqwest::Client,
        /// The base URL.
        base: String,
    },
    /// A directory laid out like `/log/`: stands in for a server in tests.
    #[cfg(test)]
    Dir(PathBuf),
}

/// Checks a base URL: `https`, a host, no credentials, query or fragment. Returns it without
/// a trailing `/`.
pub(crate) fn base_url(text: &str) -> Result<String, Error> {
    let bad = |reason: String| Error::Url {
        url: text.to_owned(),
        reason,
    };
    let url = reqwest::Url::parse(text).map_err(|e| bad(format!("does not parse: {e}")))?;
    if url.scheme() != "https" {
        return Err(bad(format!("must use https, not {}", url.scheme())));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("may not contain credentials".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("may not have a query or fragment".into()));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// A rustls configuration on aws-lc-rs that trusts only the certificates in the PEM file
/// `path` (as `touchmark_client` builds it, without a client identity: the log is public).
fn tls(path: &Path) -> Result<rustls::ClientConfig, Error> {
    let pem = std::fs::read(path).map_err(|source| Error::RootCa {
        path: path.to_owned(),
        source,
    })?;
    let mut roots = RootCertStore::empty();
    let mut reason = String::new();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let added = cert
            .map_err(|e| e.to_string())
            .and_then(|cert| roots.add(cert).map_err(|e| e.to_string()));
        if let Err(e) = added {
            reason = format!(": {e}");
        }
    }
    if roots.is_empty() {
        return Err(Error::NoRootCertificate {
            path: path.to_owned(),
            reason,
        });
    }
    let mut tls =
        rustls::ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(Error::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

impl Remote {
    /// A server at `base` (checked with [`base_url`]), trusting only the root CA in `ca_file`.
    pub(crate) fn https(base: &str, ca_file: &Path) -> Result<Self, Error> {
        let base = base_url(base)?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls(ca_file)?)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(Error::Client)?;
        Ok(Self::Https { client, base })
    }

    /// What to call this source in messages.
    pub(crate) fn describe(&self, path: &str) -> String {
        match self {
            Self::Https { base, .. } => format!("{base}/log/{path}"),
            #[cfg(test)]
            Self::Dir(dir) => dir.join(path).display().to_string(),
        }
    }

    /// Fetches `/log/<path>`, refusing a body over `limit` bytes.
    pub(crate) async fn fetch(&self, path: &str, limit: usize) -> Result<Vec<u8>, Error> {
        let what = self.describe(path);
        let too_large = |what: String| Error::TooLarge { what, limit };
        match self {
            Self::Https { client, .. } => {
                let fetch = |source| Error::Fetch {
                    url: what.clone(),
                    source,
                };
                let mut response = client.get(&what).send().await.map_err(fetch)?;
                let status = response.status();
                if !status.is_success() {
                    return Err(Error::Status {
                        url: what,
                        status: status.as_u16(),
                    });
                }
                if response.content_length().is_some_and(|l| l > limit as u64) {
                    return Err(too_large(format!("GET {what}")));
                }
                let mut body = Vec::new();
                while let Some(chunk) = response.chunk().await.map_err(fetch)? {
                    if body.len() + chunk.len() > limit {
                        return Err(too_large(format!("GET {what}")));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(body)
            }
            #[cfg(test)]
            Self::Dir(_) => {
                let body = tokio::fs::read(&what).await.map_err(|source| Error::Read {
                    path: what.clone().into(),
                    source,
                })?;
                if body.len() > limit {
                    return Err(too_large(what));
                }
                Ok(body)
            }
        }
    }
}

/// The most a tile or entry bundle of `tile`'s width may hold.
fn tile_limit(tile: &Tile) -> usize {
    let width = usize::from(tile.width());
    match tile.level() {
        Some(_) => width * HASH_SIZE,
        None => width * (2 + MAX_ENTRY_SIZE),
    }
}

/// Writes `data` to `path` atomically (a temporary file, then a rename), creating parents.
pub(crate) async fn write_atomically(path: &Path, data: &[u8]) -> Result<(), Error> {
    let failed = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Write { path, source }
    };
    let parent = path.parent().unwrap_or_else(|| Path::new("."));
    tokio::fs::create_dir_all(parent)
        .await
        .map_err(failed(parent))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".part");
    let tmp = PathBuf::from(tmp);
    tokio::fs::write(&tmp, data).await.map_err(failed(&tmp))?;
    tokio::fs::rename(&tmp, path).await.map_err(failed(path))
}

/// Mirrors every hash tile and entry bundle of a tree of `size` entries from `remote` into
/// `dir`, reporting the files as `step` of `progress`. Full tiles never change, so one already
/// in `dir` is kept; partial ones are always fetched again. Nothing fetched is trusted: the
/// audit recomputes all of it.
///
/// Returns the number of files fetched. Fails on the first fetch or write that fails, naming
/// the tile.
pub(crate) async fn mirror(
    remote: &Remote,
    dir: &Path,
    size: u64,
    step: Step,
    progress: &Arc<dyn Progress>,
) -> Result<usize, Error> {
    let mut wanted = tiles_for_size(size);
    wanted.extend(new_entry_bundles(0, size).map_err(Error::Tlog)?);
    let mut todo = Vec::new();
    for tile in wanted {
        let path = dir.join(tile.path());
        let present = tile.is_full()
            && tokio::fs::metadata(&path)
                .await
                .is_ok_and(|m| m.is_file() && m.len() > 0);
        if !present {
            todo.push(tile);
        }
    }
    progress.start(step, todo.len() as u64);
    let todo = Arc::new(todo);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY.min(todo.len()) {
        let (remote, dir, todo, next, progress) = (
            remote.clone(),
            dir.to_owned(),
            Arc::clone(&todo),
            Arc::clone(&next),
            Arc::clone(progress),
        );
        tasks.spawn(async move {
            while let Some(tile) = todo.get(next.fetch_add(1, Ordering::Relaxed)) {
                let data = remote.fetch(&tile.path(), tile_limit(tile)).await?;
                write_atomically(&dir.join(tile.path()), &data).await?;
                progress.advance(1);
            }
            Ok::<(), Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|_| Error::Task("download"))??;
    }
    progress.finish(step);
    Ok(todo.len())
}
