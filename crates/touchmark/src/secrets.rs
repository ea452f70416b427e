//! Secrets from the environment: the key passphrase, directly or from a file.

use std::path::Path;

use anyhow::{Context, bail};
use touchmark_pki::Passphrase;

/// Reads the key passphrase from `TOUCHMARK_KEY_PASSPHRASE` or the file named by
/// `TOUCHMARK_KEY_PASSPHRASE_FILE` (one trailing newline is ignored).
///
/// # Errors
/// When neither or both are set, the file cannot be read, or the passphrase is empty.
pub fn passphrase() -> anyhow::Result<Passphrase> {
    let direct = std::env::var("TOUCHMARK_KEY_PASSPHRASE").ok();
    let file = std::env::var_os("TOUCHMARK_KEY_PASSPHRASE_FILE");
    let text = match (direct, file) {
        (Some(_), Some(_)) => {
            bail!(
                "both TOUCHMARK_KEY_PASSPHRASE and TOUCHMARK_KEY_PASSPHRASE_FILE are set; set only one"
            )
        }
        (Some(text), None) => text,
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "cannot read TOUCHMARK_KEY_PASSPHRASE_FILE {}",
                    path.to_string_lossy()
                )
            })?;
            text.strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text)
                .to_owned()
        }
        (None, None) => bail!(
            "the private keys are encrypted: set TOUCHMARK_KEY_PASSPHRASE, or TOUCHMARK_KEY_PASSPHRASE_FILE to a file holding the passphrase"
        ),
    };
    Passphrase::new(text).context("TOUCHMARK_KEY_PASSPHRASE is empty")
}

/// A secret (a token) given by a flag, by a flag naming a file, by the variable `var`, or by
/// the variable `file_var` naming a file, in that order: a flag overrides the environment
/// (clap refuses two flags; two variables are refused here, by name). An empty variable counts
/// as unset.
///
/// # Errors
/// When both variables are set, or the file cannot be read or is empty.
pub fn secret(
    flag: Option<&str>,
    file_flag: Option<&Path>,
    var: &str,
    file_var: Option<&str>,
) -> anyhow::Result<Option<String>> {
    if let Some(secret) = flag {
        return Ok(Some(secret.to_owned()));
    }
    if let Some(path) = file_flag {
        return read_secret_file(path).map(Some);
    }
    let direct = std::env::var_os(var).filter(|v| !v.is_empty());
    let file = file_var.and_then(|name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(|path| (name, path))
    });
    match (direct, file) {
        (Some(_), Some((file_var, _))) => {
            bail!("both {var} and {file_var} are set; set only one")
        }
        (Some(direct), None) => direct
            .into_string()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{var} is not valid UTF-8")),
        (None, Some((file_var, path))) => read_secret_file(Path::new(&path))
            .with_context(|| file_var.to_owned())
            .map(Some),
        (None, None) => Ok(None),
    }
}

/// Reads a secret (a token) from a file, without its trailing newline.
///
/// # Errors
/// When the file cannot be read or is empty.
pub fn read_secret_file(path: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let secret = text.trim_end_matches(['\n', '\r']).to_owned();
    if secret.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(secret)
}

/// Writes a secret to a new file, readable only by its owner.
///
/// # Errors
/// When the file exists already or cannot be written.
pub fn write_secret_file(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = touchmark_pki::keystore::create_private_file(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(format!("{secret}\n").as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("cannot sync {}", path.display()))
}
