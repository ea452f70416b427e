//! Fetching a log's public endpoints (C2SP tlog-tiles under `/log/`) over HTTPS, trusting only
//! the given root CA, and mirroring its tiles into a directory laid out like the URL space.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use indicatif::ProgressBar;
use rustls::RootCertStore;
use rustls::crypto::aws_lc_rs;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use touchmark_tlog::hash::HASH_SIZE;
use touchmark_tlog::tile::{MAX_ENTRY_SIZE, Tile, new_entry_bundles, tiles_for_size};

/// The most a checkpoint note may hold.
pub const MAX_CHECKPOINT: usize = 1 << 16;
/// The most a verifier key may hold.
pub const MAX_KEY: usize = 4096;
/// Requests in flight while mirroring.
const CONCURRENCY: usize = 16;

/// Where a log's `/log/...` files come from.
#[derive(Debug, Clone)]
pub enum Remote {
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
///
/// # Errors
/// On anything else.
pub fn base_url(text: &str) -> anyhow::Result<String> {
    let url = reqwest::Url::parse(text).with_context(|| format!("URL {text:?}"))?;
    anyhow::ensure!(
        url.scheme() == "https",
        "URL {text:?} must use https, not {}",
        url.scheme()
    );
    anyhow::ensure!(
        url.host_str().is_some_and(|h| !h.is_empty()),
        "URL {text:?} has no host"
    );
    anyhow::ensure!(
        url.username().is_empty() && url.password().is_none(),
        "URL {text:?} may not contain credentials"
    );
    anyhow::ensure!(
        url.query().is_none() && url.fragment().is_none(),
        "URL {text:?} may not have a query or fragment"
    );
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// A rustls configuration on aws-lc-rs that trusts only the certificates in `root_ca_pem`
/// (as `touchmark_client` builds it, without a client identity: the log is public).
fn tls(root_ca_pem: &[u8]) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root_ca_pem) {
        roots
            .add(cert.context("root CA PEM")?)
            .context("root CA certificate")?;
    }
    anyhow::ensure!(!roots.is_empty(), "the root CA PEM holds no certificate");
    let mut tls =
        rustls::ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS")?
            .with_root_certificates(roots)
            .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

impl Remote {
    /// A server at `base` (checked with [`base_url`]), trusting only the root CA in
    /// `ca_file`.
    ///
    /// # Errors
    /// On a bad URL, an unreadable CA or a client that cannot be built.
    pub fn https(base: &str, ca_file: &Path) -> anyhow::Result<Self> {
        let base = base_url(base)?;
        let pem = std::fs::read(ca_file).with_context(|| {
            format!(
                "cannot read the root CA {} (give --ca, or --data for the installation)",
                ca_file.display()
            )
        })?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls(&pem)?)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .context("HTTP client")?;
        Ok(Self::Https { client, base })
    }

    /// What to call this source in messages.
    pub fn describe(&self, path: &str) -> String {
        match self {
            Self::Https { base, .. } => format!("{base}/log/{path}"),
            #[cfg(test)]
            Self::Dir(dir) => dir.join(path).display().to_string(),
        }
    }

    /// Fetches `/log/<path>`, refusing a body over `limit` bytes.
    ///
    /// # Errors
    /// On a transport error, a status other than 2xx, or a body that is too large.
    pub async fn fetch(&self, path: &str, limit: usize) -> anyhow::Result<Vec<u8>> {
        let what = self.describe(path);
        match self {
            Self::Https { client, .. } => {
                let mut response = client
                    .get(&what)
                    .send()
                    .await
                    .with_context(|| format!("GET {what}"))?;
                let status = response.status();
                anyhow::ensure!(status.is_success(), "GET {what}: HTTP {status}");
                if let Some(length) = response.content_length() {
                    anyhow::ensure!(
                        length <= limit as u64,
                        "GET {what}: {length} bytes, more than the {limit} it may hold"
                    );
                }
                let mut body = Vec::new();
                while let Some(chunk) = response
                    .chunk()
                    .await
                    .with_context(|| format!("GET {what}"))?
                {
                    anyhow::ensure!(
                        body.len() + chunk.len() <= limit,
                        "GET {what}: more than the {limit} bytes it may hold"
                    );
                    body.extend_from_slice(&chunk);
                }
                Ok(body)
            }
            #[cfg(test)]
            Self::Dir(_) => {
                let body = tokio::fs::read(&what)
                    .await
                    .with_context(|| format!("read {what}"))?;
                anyhow::ensure!(body.len() <= limit, "{what} is too large");
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
///
/// # Errors
/// On any I/O error.
pub async fn write_atomically(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let parent = path.parent().unwrap_or_else(|| Path::new("."));
    tokio::fs::create_dir_all(parent)
        .await
        .with_context(|| format!("create {}", parent.display()))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".part");
    let tmp = PathBuf::from(tmp);
    tokio::fs::write(&tmp, data)
        .await
        .with_context(|| format!("write {}", tmp.display()))?;
    tokio::fs::rename(&tmp, path)
        .await
        .with_context(|| format!("rename {} to {}", tmp.display(), path.display()))
}

/// Mirrors every hash tile and entry bundle of a tree of `size` entries from `remote` into
/// `dir`. Full tiles never change, so one already in `dir` is kept; partial ones are always
/// fetched again. Nothing fetched is trusted: the audit recomputes all of it.
///
/// Returns the number of files fetched.
///
/// # Errors
/// On the first fetch or write that fails, naming the tile.
pub async fn mirror(
    remote: &Remote,
    dir: &Path,
    size: u64,
    progress: &ProgressBar,
) -> anyhow::Result<usize> {
    let mut wanted = tiles_for_size(size);
    wanted.extend(new_entry_bundles(0, size)?);
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
    progress.set_length(todo.len() as u64);
    let todo = Arc::new(todo);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY.min(todo.len()) {
        let (remote, dir, todo, next, progress) = (
            remote.clone(),
            dir.to_owned(),
            Arc::clone(&todo),
            Arc::clone(&next),
            progress.clone(),
        );
        tasks.spawn(async move {
            while let Some(tile) = todo.get(next.fetch_add(1, Ordering::Relaxed)) {
                let data = remote.fetch(&tile.path(), tile_limit(tile)).await?;
                write_atomically(&dir.join(tile.path()), &data).await?;
                progress.inc(1);
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("download task")??;
    }
    Ok(todo.len())
}
