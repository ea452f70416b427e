//! `touchmark doctor`: checks a data directory as `serve` would find it — permissions, keys,
//! database, log and clock — and prints each check as ok, warn or fail. It writes nothing, so
//! it may run beside a server.

use std::sync::Arc;

use anyhow::bail;
use clap::Args;
use serde::Serialize;
use touchmark_authority::Installation;
use touchmark_authority::installation::{Check, Status};
use touchmark_core::{Clock, SystemClock};
use touchmark_store::Store;

use crate::args::{DataArgs, DatabaseArgs};
use crate::database::Database;
use crate::output::{self, Table};
use crate::{config, secrets};

/// Arguments of `doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The installation to check.
    #[command(flatten)]
    pub data: DataArgs,
    /// Where its records live.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Print the checks as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    data: String,
    status: Status,
    checks: &'a [Check],
}

/// Opens the database for reading, when it can be opened without writing: a SQLite file at
/// this build's schema version (an older one would be migrated by opening it, which is
/// `serve`'s to do). Adds the `database` check.
async fn open(database: &Database, checks: &mut Vec<Check>) -> Option<Arc<dyn Store>> {
    if let Database::Sqlite(path) = database {
        let inspection = match touchmark_store_sqlite::copy::inspect(path) {
            Ok(inspection) => inspection,
            Err(e) => {
                checks.push(Check::new("database", Status::Fail, e.to_string()));
                return None;
            }
        };
        let (version, known) = (inspection.schema_version, inspection.schema_known);
        if !inspection.problems.is_empty() {
            checks.push(Check::new(
                "database",
                Status::Fail,
                format!(
                    "{} is damaged (PRAGMA quick_check): {}; restore it from a backup",
                    path.display(),
                    inspection.problems.join("; ")
                ),
            ));
            return None;
        }
        if version > known {
            checks.push(Check::new(
                "database",
                Status::Fail,
                format!(
                    "{} is at schema version {version}, newer than this build's {known}: use a \
                     newer touchmark",
                    path.display()
                ),
            ));
            return None;
        }
        if version < known {
            checks.push(Check::new(
                "database",
                Status::Warn,
                format!(
                    "{} is at schema version {version}; `touchmark serve` migrates it to {known} \
                     (the other database checks need that first)",
                    path.display()
                ),
            ));
            return None;
        }
    }
    match database.open().await {
        Ok(store) => {
            let detail = match database {
                Database::Sqlite(_) => format!(
                    "{database} opens, passes PRAGMA quick_check, and is at this build's schema \
                     version {}",
                    touchmark_store_sqlite::SCHEMA_VERSION
                ),
                Database::Postgres(_) => {
                    format!("{database} opens, at a schema version this build reads")
                }
            };
            checks.push(Check::new("database", Status::Ok, detail));
            Some(store)
        }
        Err(e) => {
            checks.push(Check::new("database", Status::Fail, format!("{e:#}")));
            None
        }
    }
}

/// Runs `touchmark doctor`.
///
/// # Errors
/// When any check fails (after printing every check), or the configuration cannot be read.
pub async fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let dir = args.data.dir;
    let mut checks = Vec::new();
    if !dir.join("keys").is_dir() {
        bail!(
            "{} holds no Touchmark installation (no keys/); give its data directory with --data",
            dir.display()
        );
    }
    let config = config::load(&dir, None, args.database.url)?;
    let sqlite = matches!(config.database, Database::Sqlite(_));
    checks.push(Installation::doctor_permissions(&dir, sqlite));
    let passphrase = secrets::passphrase().map_err(|e| format!("{e:#}"));
    let (keys, installation) =
        tokio::task::block_in_place(|| Installation::doctor_keys(&dir, passphrase));
    checks.push(keys);
    let store = open(&config.database, &mut checks).await;
    let now = SystemClock.now();
    if let Some(installation) = &installation {
        if let Some(store) = &store {
            checks.extend(installation.doctor_database(store.as_ref(), now).await);
        }
        checks.push(installation.doctor_clock(store.as_deref(), now).await);
    }
    let status = checks.iter().map(|c| c.status).max().unwrap_or(Status::Ok);
    if args.json {
        output::json(&Report {
            data: dir.display().to_string(),
            status,
            checks: &checks,
        })?;
    } else {
        let mut table = Table::new(&["CHECK", "STATUS", "DETAIL"]);
        for check in &checks {
            table.row(vec![
                check.name.clone(),
                check.status.to_string(),
                check.detail.clone(),
            ]);
        }
        table.print();
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if failed > 0 {
        bail!("{failed} of {} checks failed", checks.len());
    }
    Ok(())
}
