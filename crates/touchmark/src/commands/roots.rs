//! `touchmark split-roots`: moves a data directory made before roots were split to a device
//! root and an infrastructure root (issue 11, finding 6). The work is the authority's
//! (`Installation::split_roots`); this takes the lock, runs it, and says what to do next.

use anyhow::bail;
use clap::Args;
use serde::Serialize;
use touchmark_authority::installation::cert_files;
use touchmark_authority::{Installation, InstallationError, RootLayout};
use touchmark_core::{Clock, SystemClock};

use crate::args::DataArgs;
use crate::{output, secrets};

/// Arguments of `split-roots`.
#[derive(Debug, Args)]
pub struct SplitRootsArgs {
    /// The data directory to split. Stop its server first (every replica, on PostgreSQL).
    #[command(flatten)]
    pub data: DataArgs,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Split {
    data: String,
    /// Whether this run only finished a split that had stopped halfway.
    resumed: bool,
    device_root_ca: String,
    infra_root_ca: String,
    station_ca: String,
    server_certificate: String,
    server_hosts: Vec<String>,
}

/// Runs `touchmark split-roots`.
///
/// # Errors
/// When the directory holds no installation or has two roots already, a server serves it, the
/// passphrase is wrong, or a key, certificate or file fails.
pub fn run(args: SplitRootsArgs) -> anyhow::Result<()> {
    let dir = args.data.dir;
    if !dir.join("keys").is_dir() {
        return Err(InstallationError::NotInitialized(dir).into());
    }
    let passphrase = secrets::passphrase()?;
    // The lock of `serve` on a SQLite data directory: refused while a server runs on it.
    let _lock = Installation::lock(&dir)?;
    let resumed = Installation::finish_interrupted_split(&dir)?;
    let installation = Installation::open(&dir, &passphrase)?;
    let installation = match installation.layout() {
        RootLayout::Split if resumed => installation,
        RootLayout::Split => bail!(InstallationError::AlreadySplit(dir)),
        _ => installation.split_roots(SystemClock.now())?,
    };
    let path = |file: &str| dir.join(file).display().to_string();
    let done = Split {
        data: dir.display().to_string(),
        resumed,
        device_root_ca: path(cert_files::DEVICE_ROOT),
        infra_root_ca: path(cert_files::INFRA_ROOT),
        station_ca: path(cert_files::STATION_CA),
        server_certificate: path(cert_files::SERVER),
        server_hosts: installation.server_cert().server_hosts()?,
    };
    if args.json {
        return output::json(&done);
    }
    if resumed {
        println!("Finished the interrupted split of {}.", done.data);
    } else {
        println!(
            "Split the roots of {}: stations and the server now have a root of their own.",
            done.data
        );
    }
    output::fields(&[
        (
            "device root CA",
            format!("{} (the old root-ca.pem, unchanged)", done.device_root_ca),
        ),
        (
            "infrastructure root CA",
            format!("{} (new)", done.infra_root_ca),
        ),
        ("station CA", format!("{} (new)", done.station_ca)),
        (
            "server certificate",
            format!(
                "{} (new, for {})",
                done.server_certificate,
                done.server_hosts.join(", ")
            ),
        ),
    ]);
    println!(
        "\nNext:\n\
         - Brokers and backends that trust devices keep the device root: the same certificate, \
           and every device issued so far still chains to it.\n\
         - Stations, admins and auditors trust {} for the server from now on (--ca).\n\
         - Enroll every station again, as a new station (`touchmark station create`, then \
           `touchmark station enroll` on the fixture PC): the server refuses certificates of \
           the old station CA.\n\
         - Station certificates issued before the split still chain to the device root until \
           they expire, a year after their enrollment.",
        done.infra_root_ca
    );
    Ok(())
}
