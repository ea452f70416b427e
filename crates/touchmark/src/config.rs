//! The server's configuration: defaults, then `<data>/touchmark.toml`, then `TOUCHMARK_*`
//! variables and flags (clap applies those two).

use std::net::SocketAddr;
use std::path::Path;

use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use touchmark_authority::log::LogConfig;
use touchmark_core::policy::refusals::RefusalLimit;
use touchmark_server::ConnectionLimits;

use touchmark_core::field::DatabaseUrl;
use touchmark_pki_pkcs11::Pkcs11Config;

use crate::database::{self, Database};

/// The file name inside the data directory.
pub const FILE: &str = "touchmark.toml";

/// The default listening address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

/// `touchmark.toml` as written. Unknown keys are an error, so a typo is not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    database: Option<String>,
    log: Option<LogFile>,
    connections: Option<ConnectionsFile>,
    refusals: Option<RefusalsFile>,
    field: Option<FieldFile>,
    pkcs11: Option<Pkcs11Config>,
    /// The base URL relying parties reach `/crl` and `/ocsp` at (`init --public-url`).
    public_url: Option<String>,
    firmware: Option<FirmwareFile>,
    vulnerabilities: Option<VulnerabilitiesFile>,
    security_txt: Option<SecurityTxtFile>,
    csaf: Option<CsafFile>,
}

/// The `[csaf]` table: who publishes the CSAF 2.0 advisories, served under
/// `<public_url>/.well-known/csaf/` (docs/vulnerabilities.md, "Advisories").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CsafFile {
    /// The publisher's name (and the product tree's vendor).
    publisher_name: String,
    /// The publisher's namespace: an https URL it controls.
    publisher_namespace: String,
    /// coordinator, discoverer, other, translator, user or vendor [default: vendor].
    publisher_category: Option<String>,
    /// How to reach the publisher, one line.
    contact_details: Option<String>,
    /// Whether CSAF aggregators may list this provider [default: true].
    list_on_aggregators: Option<bool>,
    /// Whether CSAF aggregators may mirror its advisories [default: true].
    mirror_on_aggregators: Option<bool>,
}

/// The CSAF configuration from `[csaf]`, checked: it needs an https public URL, where its
/// files are served.
fn csaf_config(
    file: Option<CsafFile>,
    public_url: Option<&str>,
) -> anyhow::Result<Option<touchmark_core::csaf::CsafConfig>> {
    use touchmark_core::csaf::{CsafConfig, Publisher, PublisherCategory};
    let Some(file) = file else {
        return Ok(None);
    };
    let Some(base) = public_url.filter(|u| u.starts_with("https://")) else {
        bail!("`[csaf]` needs an https `public_url`: the advisories are served under it");
    };
    let name = touchmark_core::vuln::line("name", &file.publisher_name, 256)
        .map_err(|e| anyhow::anyhow!("`csaf.publisher_name`: {e}"))?;
    let namespace = https_url("csaf.publisher_namespace", &file.publisher_namespace)?;
    let category = match file.publisher_category.as_deref() {
        None => PublisherCategory::Vendor,
        Some(c) => PublisherCategory::parse(c).ok_or_else(|| {
            anyhow::anyhow!(
                "`csaf.publisher_category`: `{c}` is not one of coordinator, discoverer, other, \
                 translator, user, vendor"
            )
        })?,
    };
    let contact_details = file
        .contact_details
        .map(|c| {
            touchmark_core::vuln::line("contact", &c, 256)
                .map_err(|e| anyhow::anyhow!("`csaf.contact_details`: {e}"))
        })
        .transpose()?;
    Ok(Some(CsafConfig {
        publisher: Publisher {
            name,
            namespace,
            category,
            contact_details,
        },
        base_url: base.trim_end_matches('/').to_owned(),
        list_on_aggregators: file.list_on_aggregators.unwrap_or(true),
        mirror_on_aggregators: file.mirror_on_aggregators.unwrap_or(true),
    }))
}

/// The `[vulnerabilities]` table: the public intake (docs/vulnerabilities.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VulnerabilitiesFile {
    /// The age recipient (`age1…`) reports may be encrypted to; its identity stays with the
    /// admins, never on the server.
    age_recipient: Option<String>,
    /// Reports each source address may send per minute, sustained [default: 1].
    rate_per_minute: Option<u32>,
    /// Reports each source address may send at once [default: 10].
    burst: Option<u32>,
}

/// The `[security_txt]` table: `/.well-known/security.txt` (RFC 9116).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecurityTxtFile {
    /// `Contact:` URIs, most preferred first: mailto:, https: or tel:.
    contact: Vec<String>,
    /// A fixed `Expires:` (RFC 3339), in the future and at most a year away.
    expires: Option<String>,
    /// Or `Expires:` this many days after each answer [default: 180; 1 to 365].
    expires_days: Option<u16>,
    /// `Policy:`, an https URL.
    policy: Option<String>,
    /// `Preferred-Languages:` [default: en].
    preferred_languages: Option<Vec<String>>,
    /// `Canonical:`, an https URL [default: <public_url>/.well-known/security.txt].
    canonical: Option<String>,
}

fn https_url(name: &str, url: &str) -> anyhow::Result<String> {
    let checked = touchmark_core::field::HttpUrl::parse("url", url)
        .map_err(|e| anyhow::anyhow!("`{name}`: {e}"))?;
    if !checked.as_str().starts_with("https://") {
        bail!("`{name}` must be an https:// URL");
    }
    Ok(checked.as_str().to_owned())
}

/// The intake's options from `[vulnerabilities]` and `[security_txt]`, over the defaults.
/// Without `[security_txt]`, a server with a public URL serves one that names its intake.
fn vuln_options(
    vulns: VulnerabilitiesFile,
    txt: Option<SecurityTxtFile>,
    public_url: Option<&str>,
    now: time::OffsetDateTime,
) -> anyhow::Result<touchmark_server::VulnOptions> {
    use touchmark_server::security_txt::{Expires, SecurityTxt};
    let default = touchmark_server::VulnOptions::default();
    if let Some(r) = &vulns.age_recipient {
        touchmark_authority::vuln::check_recipient(r)
            .map_err(|e| anyhow::anyhow!("`vulnerabilities.age_recipient`: {e}"))?;
    }
    let per_second = match vulns.rate_per_minute {
        None => default.rate.per_second,
        Some(n @ 1..=6_000) => f64::from(n) / 60.0,
        Some(_) => bail!("`vulnerabilities.rate_per_minute` must be 1 to 6000"),
    };
    let burst = match vulns.burst {
        None => default.rate.burst,
        Some(n @ 1..=10_000) => n,
        Some(_) => bail!("`vulnerabilities.burst` must be 1 to 10000"),
    };
    let public = public_url.filter(|u| u.starts_with("https://"));
    let encryption = match (&vulns.age_recipient, public) {
        (Some(_), Some(base)) => Some(format!("{base}/v1/vulnerability-reports/encryption-key")),
        _ => None,
    };
    let security_txt = match (txt, public) {
        (None, None) => None,
        (None, Some(base)) => Some(SecurityTxt {
            contact: vec![format!("{base}/v1/vulnerability-reports")],
            expires: Expires::DaysAfterServing(180),
            policy: None,
            preferred_languages: vec!["en".into()],
            canonical: Some(format!("{base}/.well-known/security.txt")),
            encryption,
        }),
        (Some(t), _) => {
            if t.contact.is_empty() {
                bail!("`security_txt.contact` needs at least one URI (RFC 9116 §2.5.3)");
            }
            for c in &t.contact {
                let scheme_ok = ["mailto:", "https://", "tel:"]
                    .iter()
                    .any(|s| c.starts_with(s));
                if !scheme_ok || c.len() > 256 || !c.bytes().all(|b| b.is_ascii_graphic()) {
                    bail!("`security_txt.contact`: `{c}` is not a mailto:, https:// or tel: URI");
                }
            }
            let expires = match (t.expires.as_deref(), t.expires_days) {
                (Some(_), Some(_)) => {
                    bail!("`security_txt`: give `expires` or `expires_days`, not both")
                }
                (Some(at), None) => {
                    let at = touchmark_core::clock::parse_timestamp(at)
                        .map_err(|e| anyhow::anyhow!("`security_txt.expires`: {e}"))?;
                    if at <= now || at > now + time::Duration::days(366) {
                        bail!(
                            "`security_txt.expires` must be in the future, at most a year away (RFC 9116 §2.5.5)"
                        );
                    }
                    Expires::At(at)
                }
                (None, None) => Expires::DaysAfterServing(180),
                (None, Some(d @ 1..=365)) => Expires::DaysAfterServing(d),
                (None, Some(_)) => bail!("`security_txt.expires_days` must be 1 to 365"),
            };
            let languages = t.preferred_languages.unwrap_or_else(|| vec!["en".into()]);
            for l in &languages {
                let ok = !l.is_empty()
                    && l.len() <= 35
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && l.bytes().next().is_some_and(|b| b.is_ascii_alphabetic());
                if !ok {
                    bail!(
                        "`security_txt.preferred_languages`: `{l}` is not a language tag (RFC 5646)"
                    );
                }
            }
            let canonical = match (t.canonical, public) {
                (Some(c), _) => Some(https_url("security_txt.canonical", &c)?),
                (None, Some(base)) => Some(format!("{base}/.well-known/security.txt")),
                (None, None) => None,
            };
            Some(SecurityTxt {
                contact: t.contact,
                expires,
                policy: t
                    .policy
                    .map(|p| https_url("security_txt.policy", &p))
                    .transpose()?,
                preferred_languages: languages,
                canonical,
                encryption,
            })
        }
    };
    Ok(touchmark_server::VulnOptions {
        rate: touchmark_server::rate::RateLimit { per_second, burst },
        recipient: vulns.age_recipient,
        security_txt,
        csaf: None,
        deadline_sweep: default.deadline_sweep,
    })
}

/// The `[firmware]` table: what a release upload may be.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FirmwareFile {
    /// The largest release image accepted, in bytes [default: 16 MiB].
    max_image_size: Option<u64>,
}

impl FirmwareFile {
    fn max_image_size(&self) -> anyhow::Result<u64> {
        match self.max_image_size {
            None => Ok(touchmark_server::DEFAULT_MAX_RELEASE_SIZE),
            Some(n) if (1024..=touchmark_server::MAX_RELEASE_SIZE).contains(&n) => Ok(n),
            Some(_) => bail!(
                "`firmware.max_image_size` must be 1024 to {}",
                touchmark_server::MAX_RELEASE_SIZE
            ),
        }
    }
}

/// The `[connections]` table: what client connections may hold (issue 11, security finding 1).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionsFile {
    /// Connections open at once [default: from the open-file limit].
    max: Option<usize>,
    /// TLS handshake timeout.
    handshake_timeout_ms: Option<u64>,
    /// HTTP/1.1 header-read timeout.
    header_timeout_ms: Option<u64>,
    /// Idle timeout.
    idle_timeout_ms: Option<u64>,
    /// Listen backlog.
    backlog: Option<u32>,
}

impl ConnectionsFile {
    /// The limits, over the defaults, each within the bounds that keep a server usable.
    fn config(&self) -> anyhow::Result<Connections> {
        let default = ConnectionLimits::default();
        let ms = |name: &str, v: Option<u64>, d: Duration, range: (u64, u64)| {
            let value = v.map_or(d, Duration::from_millis);
            let (low, high) = (
                Duration::from_millis(range.0),
                Duration::from_millis(range.1),
            );
            if (low..=high).contains(&value) {
                Ok(value)
            } else {
                Err(anyhow::anyhow!(
                    "`connections.{name}` must be {} to {}",
                    range.0,
                    range.1
                ))
            }
        };
        if self.max == Some(0) {
            bail!("`connections.max` must be at least 1");
        }
        let backlog = self.backlog.unwrap_or(default.backlog);
        if !(1..=65_535).contains(&backlog) {
            bail!("`connections.backlog` must be 1 to 65535");
        }
        Ok(Connections {
            max: self.max,
            handshake_timeout: ms(
                "handshake_timeout_ms",
                self.handshake_timeout_ms,
                default.handshake_timeout,
                (100, 120_000),
            )?,
            header_timeout: ms(
                "header_timeout_ms",
                self.header_timeout_ms,
                default.header_timeout,
                (100, 600_000),
            )?,
            idle_timeout: ms(
                "idle_timeout_ms",
                self.idle_timeout_ms,
                default.idle_timeout,
                (1_000, 3_600_000),
            )?,
            backlog,
        })
    }
}

/// The `[refusals]` table: how a station refused at check 1 is logged.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefusalsFile {
    /// The refusal window.
    window_ms: Option<u64>,
    /// Refusals logged one by one per window, station and code; the rest are counted into one
    /// alert.
    logged_per_window: Option<u64>,
}

impl RefusalsFile {
    fn limit(&self) -> anyhow::Result<RefusalLimit> {
        let default = RefusalLimit::default();
        let window = match self.window_ms {
            None => default.window,
            Some(ms @ 1_000..=86_400_000) => {
                time::Duration::milliseconds(i64::try_from(ms).context("`refusals.window_ms`")?)
            }
            Some(_) => bail!("`refusals.window_ms` must be 1000 to 86400000"),
        };
        let logged = match self.logged_per_window {
            None => default.logged,
            Some(n @ 1..=1_000) => n,
            Some(_) => bail!("`refusals.logged_per_window` must be 1 to 1000"),
        };
        Ok(RefusalLimit { window, logged })
    }
}

/// The `[field]` table: what field backends may do (docs/field.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldFile {
    /// Requests per second each field token may make on `/v1/field/*`, sustained.
    rate_per_second: Option<u32>,
    /// Requests each field token may make at once.
    burst: Option<u32>,
    /// How long a challenge for a proof of possession is accepted.
    challenge_ttl_ms: Option<u64>,
}

/// What field backends may do: each token's rate, and how long a challenge lasts.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldLimits {
    /// Each field token's bucket.
    pub rate: touchmark_server::rate::RateLimit,
    /// How long a challenge is accepted.
    pub challenge_ttl: Duration,
}

impl FieldFile {
    fn limits(&self) -> anyhow::Result<FieldLimits> {
        let default = touchmark_server::rate::RateLimit::default();
        let per_second = match self.rate_per_second {
            None => default.per_second,
            Some(n @ 1..=1_000_000) => f64::from(n),
            Some(_) => bail!("`field.rate_per_second` must be 1 to 1000000"),
        };
        let burst = match self.burst {
            None => default.burst,
            Some(n @ 1..=1_000_000) => n,
            Some(_) => bail!("`field.burst` must be 1 to 1000000"),
        };
        let challenge_ttl = match self.challenge_ttl_ms {
            None => Duration::from_secs(60),
            Some(ms @ 1_000..=3_600_000) => Duration::from_millis(ms),
            Some(_) => bail!("`field.challenge_ttl_ms` must be 1000 to 3600000"),
        };
        Ok(FieldLimits {
            rate: touchmark_server::rate::RateLimit { per_second, burst },
            challenge_ttl,
        })
    }
}

/// What client connections may hold: [`ConnectionLimits`] with the cap still to be sized from
/// the open-file limit when it is not configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connections {
    /// Connections open at once; `None` to size it from the open-file limit.
    pub max: Option<usize>,
    /// TLS handshake timeout.
    pub handshake_timeout: Duration,
    /// HTTP/1.1 header-read timeout.
    pub header_timeout: Duration,
    /// Idle timeout.
    pub idle_timeout: Duration,
    /// Listen backlog.
    pub backlog: u32,
}

impl Connections {
    /// The limits, with `max` connections.
    pub fn limits(&self, max: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: max,
            handshake_timeout: self.handshake_timeout,
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            backlog: self.backlog,
        }
    }
}

/// The `[log]` table: the audit log's timings, in milliseconds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogFile {
    /// How often the sequencer looks for new entries.
    interval_ms: Option<u64>,
    /// How long the sequencer lease lasts unless renewed.
    lease_ttl_ms: Option<u64>,
}

impl LogFile {
    /// The timings, over the defaults. The lease must outlast two intervals, or a live
    /// sequencer would lose it between two renewals.
    fn config(&self) -> anyhow::Result<LogConfig> {
        let default = LogConfig::default();
        let ms = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_millis);
        let config = LogConfig {
            interval: ms(self.interval_ms, default.interval),
            lease_ttl: ms(self.lease_ttl_ms, default.lease_ttl),
            // Set by `serve` once it holds the data directory's lock, never by the file.
            sole: None,
        };
        if !(Duration::from_millis(10)..=Duration::from_secs(10)).contains(&config.interval) {
            bail!("`log.interval_ms` must be 10 to 10000");
        }
        if config.lease_ttl < 2 * config.interval || config.lease_ttl > Duration::from_secs(300) {
            bail!(
                "`log.lease_ttl_ms` must be at least twice `log.interval_ms`, and at most 300000"
            );
        }
        Ok(config)
    }
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Where the server listens.
    pub listen: SocketAddr,
    /// Where the records live.
    pub database: Database,
    /// The audit log's timings.
    pub log: LogConfig,
    /// What client connections may hold.
    pub connections: Connections,
    /// How refusals of check 1 are logged (`policy::refusals`).
    pub refusal_limit: RefusalLimit,
    /// What field backends may do (`[field]`).
    pub field: FieldLimits,
    /// The hardware module that holds the keys (`[pkcs11]`), if they are not in the data
    /// directory's encrypted key store.
    pub pkcs11: Option<Pkcs11Config>,
    /// The base URL under which new device certificates name their CRL and OCSP responder
    /// (`public_url`, overridden by `TOUCHMARK_PUBLIC_URL`); `None`: they name none.
    pub public_url: Option<String>,
    /// The largest release image accepted, in bytes (`[firmware] max_image_size`).
    pub max_release_size: u64,
    /// The vulnerability intake (`[vulnerabilities]`, `[security_txt]`).
    pub vuln: touchmark_server::VulnOptions,
}

/// Loads the configuration of the data directory `dir`. `listen` and `database` from flags or
/// variables take precedence over `TOUCHMARK_DATABASE_URL_FILE`, which takes precedence over
/// the file.
///
/// # Errors
/// When the file cannot be read or does not parse, or a database URL is invalid.
pub fn load(
    dir: &Path,
    listen: Option<SocketAddr>,
    database: Option<DatabaseUrl>,
) -> anyhow::Result<Config> {
    let path = dir.join(FILE);
    let file: FileConfig = match std::fs::read_to_string(&path) {
        Ok(text) => {
            toml::from_str(&text).with_context(|| format!("{} is invalid", path.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileConfig::default(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let default: SocketAddr = DEFAULT_LISTEN.parse().context("default listen address")?;
    let from_file = file
        .database
        .as_deref()
        .map(str::parse::<DatabaseUrl>)
        .transpose()
        .with_context(|| format!("{}: `database`", path.display()))?;
    let url = match database {
        Some(url) => Some(url),
        None => database::url_from_file_variable()?.or(from_file),
    };
    let log = file
        .log
        .unwrap_or_default()
        .config()
        .with_context(|| format!("{} is invalid", path.display()))?;
    let invalid = || format!("{} is invalid", path.display());
    let connections = file
        .connections
        .unwrap_or_default()
        .config()
        .with_context(invalid)?;
    let refusal_limit = file
        .refusals
        .unwrap_or_default()
        .limit()
        .with_context(invalid)?;
    let field = file
        .field
        .unwrap_or_default()
        .limits()
        .with_context(invalid)?;
    let public_url = match std::env::var("TOUCHMARK_PUBLIC_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => file.public_url,
    };
    let public_url = public_url
        .map(|u| public_url_checked(&u))
        .transpose()
        .with_context(invalid)?;
    let max_release_size = file
        .firmware
        .unwrap_or_default()
        .max_image_size()
        .with_context(invalid)?;
    let mut vuln = vuln_options(
        file.vulnerabilities.unwrap_or_default(),
        file.security_txt,
        public_url.as_deref(),
        time::OffsetDateTime::now_utc(),
    )
    .with_context(invalid)?;
    vuln.csaf = csaf_config(file.csaf, public_url.as_deref()).with_context(invalid)?;
    Ok(Config {
        vuln,
        public_url,
        max_release_size,
        listen: listen.or(file.listen).unwrap_or(default),
        database: Database::for_dir(dir, url),
        log,
        connections,
        refusal_limit,
        field,
        pkcs11: file.pkcs11,
    })
}

/// A public base URL: an http(s) URL (`HttpUrl`'s rules), without a trailing `/`.
///
/// # Errors
/// When it is not an http:// or https:// URL.
pub fn public_url_checked(url: &str) -> anyhow::Result<String> {
    let checked = touchmark_core::field::HttpUrl::parse("public_url", url)
        .map_err(|e| anyhow::anyhow!("`public_url`: {e}"))?;
    Ok(checked.as_str().trim_end_matches('/').to_owned())
}

/// The line `init --public-url` adds to the file.
pub fn public_url_line(url: &str) -> String {
    format!(
        "\n# The base URL relying parties reach this server's /crl and /ocsp at: new device\n\
         # certificates name their CRL and OCSP responder under it.\npublic_url = \"{url}\"\n"
    )
}

/// The file `init` writes. A PostgreSQL URL is recorded unless it carries a password, which
/// belongs in `TOUCHMARK_DATABASE_URL` or `TOUCHMARK_DATABASE_URL_FILE` instead.
pub fn initial_file(database: &Database) -> String {
    let database = match database {
        Database::Sqlite(_) => {
            "# The database: SQLite in this directory (touchmark.db) unless a PostgreSQL URL\n\
             # is set here or in TOUCHMARK_DATABASE_URL.\n\
             # database = \"postgres://touchmark@db.example:5432/touchmark\"\n"
                .to_owned()
        }
        Database::Postgres(url) if url.has_password() => format!(
            "# The database is PostgreSQL ({url}); its URL holds a password, so pass it in\n\
             # TOUCHMARK_DATABASE_URL or TOUCHMARK_DATABASE_URL_FILE to every replica.\n"
        ),
        Database::Postgres(url) => format!(
            "# The database, shared by every replica that serves this data directory.\n\
             database = \"{}\"\n",
            url.expose()
        ),
    };
    format!(
        "# Touchmark server configuration. TOUCHMARK_* variables and command-line flags override it.\n\
         # Unknown keys are an error.\n\n\
         # The address `touchmark serve` listens on.\n\
         listen = \"{DEFAULT_LISTEN}\"\n\n\
         {database}"
    )
}

/// The `[pkcs11]` table `init` writes for keys made in a hardware module.
pub fn pkcs11_section(config: &Pkcs11Config) -> String {
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let mut text = format!(
        "\n# The keys live in this PKCS#11 token; `touchmark serve` logs in with the PIN below.\n\
         [pkcs11]\n\
         module = {}\n\
         token = {}\n",
        quote(&config.module.to_string_lossy()),
        quote(&config.token)
    );
    if let Some(file) = &config.pin_file {
        text.push_str(&format!("pin_file = {}\n", quote(&file.to_string_lossy())));
    }
    if let Some(var) = &config.pin_env {
        text.push_str(&format!("pin_env = {}\n", quote(var)));
    }
    if let Some(prefix) = &config.label_prefix {
        text.push_str(&format!("label_prefix = {}\n", quote(prefix)));
    }
    if let Some(n) = config.sessions {
        text.push_str(&format!("sessions = {n}\n"));
    }
    if config.labels.is_empty() {
        text.push_str(
            "# A key's token label, where it is not its name:\n# [pkcs11.labels]\n# root-ca = \"touchmark-device-root-2026\"\n",
        );
    } else {
        text.push_str("[pkcs11.labels]\n");
        for (name, label) in &config.labels {
            text.push_str(&format!("{} = {}\n", quote(name), quote(label)));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn file_flag_and_default_layer() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            load(dir.path(), None, None).unwrap().listen.to_string(),
            DEFAULT_LISTEN
        );
        std::fs::write(dir.path().join(FILE), "listen = \"127.0.0.1:9000\"\n").unwrap();
        assert_eq!(load(dir.path(), None, None).unwrap().listen.port(), 9000);
        let flag: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        assert_eq!(
            load(dir.path(), Some(flag), None).unwrap().listen.port(),
            9001
        );
        std::fs::write(
            dir.path().join(FILE),
            "listen = \"127.0.0.1:9000\"\nlisten_port = 1\n",
        )
        .unwrap();
        let err = load(dir.path(), None, None).unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
    }

    #[test]
    fn database_layers_and_defaults_to_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let config = load(dir.path(), None, None).unwrap();
        assert!(
            matches!(config.database, Database::Sqlite(p) if p == dir.path().join("touchmark.db"))
        );
        std::fs::write(
            dir.path().join(FILE),
            "database = \"postgres://postgres@127.0.0.1:5432/file\"\n",
        )
        .unwrap();
        let config = load(dir.path(), None, None).unwrap();
        assert!(matches!(&config.database, Database::Postgres(u) if u.expose().ends_with("/file")));
        let flag = "postgres://postgres@127.0.0.1:5432/flag"
            .parse::<DatabaseUrl>()
            .unwrap();
        let config = load(dir.path(), None, Some(flag)).unwrap();
        assert!(matches!(&config.database, Database::Postgres(u) if u.expose().ends_with("/flag")));
        std::fs::write(dir.path().join(FILE), "database = \"mysql://x/y\"\n").unwrap();
        let err = format!("{:#}", load(dir.path(), None, None).unwrap_err());
        assert!(err.contains("`database`") && err.contains("mysql"), "{err}");
    }

    #[test]
    fn connection_limits_and_the_refusal_window_layer_and_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let config = load(dir.path(), None, None).unwrap();
        let default = ConnectionLimits::default();
        assert_eq!(
            config.connections.max, None,
            "sized from the open-file limit"
        );
        assert_eq!(
            config.connections.limits(7),
            ConnectionLimits {
                max_connections: 7,
                ..default
            }
        );
        assert_eq!(config.refusal_limit, RefusalLimit::default());
        std::fs::write(
            dir.path().join(FILE),
            "[connections]\nmax = 500\nhandshake_timeout_ms = 5000\nheader_timeout_ms = 2000\n\
             idle_timeout_ms = 30000\nbacklog = 128\n[refusals]\nwindow_ms = 10000\n\
             logged_per_window = 1\n",
        )
        .unwrap();
        let config = load(dir.path(), None, None).unwrap();
        assert_eq!(
            config.connections,
            Connections {
                max: Some(500),
                handshake_timeout: Duration::from_secs(5),
                header_timeout: Duration::from_secs(2),
                idle_timeout: Duration::from_secs(30),
                backlog: 128,
            }
        );
        assert_eq!(
            config.refusal_limit,
            RefusalLimit {
                window: time::Duration::seconds(10),
                logged: 1
            }
        );
        for (text, complaint) in [
            ("[connections]\nmax = 0\n", "`connections.max`"),
            (
                "[connections]\nidle_timeout_ms = 10\n",
                "`connections.idle_timeout_ms`",
            ),
            ("[connections]\nbacklog = 0\n", "`connections.backlog`"),
            ("[connections]\nmax_conns = 5\n", "unknown field"),
            ("[refusals]\nwindow_ms = 5\n", "`refusals.window_ms`"),
            (
                "[refusals]\nlogged_per_window = 0\n",
                "`refusals.logged_per_window`",
            ),
        ] {
            std::fs::write(dir.path().join(FILE), text).unwrap();
            let err = format!("{:#}", load(dir.path(), None, None).unwrap_err());
            assert!(err.contains(complaint), "{text}: {err}");
        }
    }

    #[test]
    fn field_limits_have_defaults_and_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let config = load(dir.path(), None, None).unwrap();
        assert_eq!(
            config.field.rate,
            touchmark_server::rate::RateLimit::default()
        );
        assert_eq!(config.field.challenge_ttl, Duration::from_secs(60));
        std::fs::write(
            dir.path().join(FILE),
            "[field]\nrate_per_second = 50\nburst = 10\nchallenge_ttl_ms = 30000\n",
        )
        .unwrap();
        let config = load(dir.path(), None, None).unwrap();
        assert_eq!(
            config.field,
            FieldLimits {
                rate: touchmark_server::rate::RateLimit {
                    per_second: 50.0,
                    burst: 10
                },
                challenge_ttl: Duration::from_secs(30),
            }
        );
        for (text, complaint) in [
            ("[field]\nrate_per_second = 0\n", "`field.rate_per_second`"),
            ("[field]\nburst = 0\n", "`field.burst`"),
            (
                "[field]\nchallenge_ttl_ms = 5\n",
                "`field.challenge_ttl_ms`",
            ),
            ("[field]\nrate = 5\n", "unknown field"),
        ] {
            std::fs::write(dir.path().join(FILE), text).unwrap();
            let err = format!("{:#}", load(dir.path(), None, None).unwrap_err());
            assert!(err.contains(complaint), "{text}: {err}");
        }
    }

    #[test]
    fn the_intake_and_security_txt_have_checked_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let config = load(dir.path(), None, None).unwrap();
        assert!(config.vuln.security_txt.is_none() && config.vuln.recipient.is_none());
        std::fs::write(
            dir.path().join(FILE),
            "public_url = \"https://tm.example\"\n[vulnerabilities]\nburst = 3\n\
             age_recipient = \"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\"\n\
             [security_txt]\ncontact = [\"mailto:security@tm.example\"]\n",
        )
        .unwrap();
        let config = load(dir.path(), None, None).unwrap();
        let txt = config.vuln.security_txt.unwrap();
        assert_eq!(config.vuln.rate.burst, 3);
        assert_eq!(
            txt.canonical.as_deref(),
            Some("https://tm.example/.well-known/security.txt")
        );
        assert_eq!(
            txt.encryption.as_deref(),
            Some("https://tm.example/v1/vulnerability-reports/encryption-key")
        );
        assert_eq!(txt.preferred_languages, ["en"]);
        assert!(config.vuln.csaf.is_none());
        std::fs::write(
            dir.path().join(FILE),
            "public_url = \"https://tm.example/\"\n[csaf]\npublisher_name = \"Acme\"\n\
             publisher_namespace = \"https://acme.example\"\nmirror_on_aggregators = false\n",
        )
        .unwrap();
        let csaf = load(dir.path(), None, None).unwrap().vuln.csaf.unwrap();
        assert_eq!(csaf.base_url, "https://tm.example");
        assert_eq!(
            csaf.publisher.category,
            touchmark_core::csaf::PublisherCategory::Vendor
        );
        assert!(csaf.list_on_aggregators && !csaf.mirror_on_aggregators);
        for (text, complaint) in [
            ("[security_txt]\ncontact = []\n", "`security_txt.contact`"),
            (
                "[security_txt]\ncontact = [\"ftp://x\"]\n",
                "`security_txt.contact`",
            ),
            (
                "[security_txt]\ncontact = [\"mailto:a@b.c\"]\nexpires = \"2001-01-01T00:00:00Z\"\n",
                "`security_txt.expires`",
            ),
            (
                "[security_txt]\ncontact = [\"mailto:a@b.c\"]\nexpires_days = 400\n",
                "`security_txt.expires_days`",
            ),
            (
                "[security_txt]\ncontact = [\"mailto:a@b.c\"]\npolicy = \"http://x\"\n",
                "`security_txt.policy`",
            ),
            (
                "[vulnerabilities]\nage_recipient = \"age1nope\"\n",
                "`vulnerabilities.age_recipient`",
            ),
            ("[vulnerabilities]\nburst = 0\n", "`vulnerabilities.burst`"),
            ("[security_txt]\ncontacts = []\n", "unknown field"),
            (
                "[csaf]\npublisher_name = \"Acme\"\npublisher_namespace = \"https://acme.example\"\n",
                "needs an https `public_url`",
            ),
            (
                "public_url = \"https://tm.example\"\n[csaf]\npublisher_name = \"Acme\"\n\
                 publisher_namespace = \"http://acme.example\"\n",
                "`csaf.publisher_namespace`",
            ),
            (
                "public_url = \"https://tm.example\"\n[csaf]\npublisher_name = \"Acme\"\n\
                 publisher_namespace = \"https://acme.example\"\npublisher_category = \"maker\"\n",
                "`csaf.publisher_category`",
            ),
            (
                "public_url = \"https://tm.example\"\n[csaf]\npublisher_name = \" \"\n\
                 publisher_namespace = \"https://acme.example\"\n",
                "`csaf.publisher_name`",
            ),
            (
                "public_url = \"https://tm.example\"\n[csaf]\npublisher_name = \"Acme\"\n\
                 publisher_namespace = \"https://acme.example\"\ntlp = \"RED\"\n",
                "unknown field",
            ),
        ] {
            std::fs::write(dir.path().join(FILE), text).unwrap();
            let err = format!("{:#}", load(dir.path(), None, None).unwrap_err());
            assert!(err.contains(complaint), "{text}: {err}");
        }
    }

    #[test]
    fn initial_file_parses_and_keeps_passwords_out() {
        let dir = tempfile::tempdir().unwrap();
        for (url, recorded) in [
            (None, false),
            (Some("postgres://postgres@127.0.0.1:5432/test"), true),
            (Some("postgres://app:s3cret@127.0.0.1:5432/test"), false),
        ] {
            let db = Database::for_dir(dir.path(), url.map(|u| u.parse::<DatabaseUrl>().unwrap()));
            let text = initial_file(&db);
            assert!(!text.contains("s3cret"), "{text}");
            std::fs::write(dir.path().join(FILE), &text).unwrap();
            let loaded = load(dir.path(), None, None).unwrap();
            assert_eq!(
                matches!(loaded.database, Database::Postgres(_)),
                recorded,
                "{text}"
            );
        }
    }
}
