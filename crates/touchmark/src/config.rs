//! The server's configuration: defaults, then `<data>/touchmark.toml`, then `TOUCHMARK_*`
//! variables and flags (clap applies those two).

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

/// The file name inside the data directory.
pub const FILE: &str = "touchmark.toml";

/// The default listening address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

/// `touchmark.toml` as written. Unknown keys are an error, so a typo is not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Where the server listens.
    pub listen: SocketAddr,
}

/// Loads the configuration of the data directory `dir`, with `listen` from the flag or
/// variable taking precedence over the file.
///
/// # Errors
/// When the file cannot be read or does not parse.
pub fn load(dir: &Path, listen: Option<SocketAddr>) -> anyhow::Result<Config> {
    let path = dir.join(FILE);
    let file: FileConfig = match std::fs::read_to_string(&path) {
        Ok(text) => {
            toml::from_str(&text).with_context(|| format!("{} is invalid", path.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileConfig::default(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let default: SocketAddr = DEFAULT_LISTEN.parse().context("default listen address")?;
    Ok(Config {
        listen: listen.or(file.listen).unwrap_or(default),
    })
}

/// The file `init` writes.
pub fn initial_file() -> String {
    format!(
        "# Touchmark server configuration. TOUCHMARK_* variables and command-line flags override it.\n\
         # Unknown keys are an error.\n\n\
         # The address `touchmark serve` listens on.\n\
         listen = \"{DEFAULT_LISTEN}\"\n"
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn file_flag_and_default_layer() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            load(dir.path(), None).unwrap().listen.to_string(),
            DEFAULT_LISTEN
        );
        std::fs::write(dir.path().join(FILE), "listen = \"127.0.0.1:9000\"\n").unwrap();
        assert_eq!(load(dir.path(), None).unwrap().listen.port(), 9000);
        let flag: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        assert_eq!(load(dir.path(), Some(flag)).unwrap().listen.port(), 9001);
        std::fs::write(
            dir.path().join(FILE),
            "listen = \"127.0.0.1:9000\"\nlisten_port = 1\n",
        )
        .unwrap();
        let err = load(dir.path(), None).unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
    }
}
