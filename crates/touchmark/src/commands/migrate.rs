//! `touchmark migrate`: copies a complete SQLite installation into an empty PostgreSQL
//! database, then proves the copy: the same counts for every order, the same events, and the
//! same signed log (size, root, and a checkpoint that verifies with the installation's key).

use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use touchmark_authority::Installation;
use touchmark_core::field::DatabaseUrl;
use touchmark_store::Store;
use touchmark_store_postgres::PostgresStore;
use touchmark_store_sqlite::SqliteStore;
use touchmark_tlog::checkpoint::SignedCheckpoint;
use touchmark_tlog::note::NoteVerifier;

use crate::args::DataArgs;
use crate::output;

/// Arguments of `migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The installation whose SQLite database (touchmark.db) is copied. Stop its server first.
    #[command(flatten)]
    pub data: DataArgs,
    /// The PostgreSQL database to copy into; it must hold no Touchmark records yet.
    #[arg(
        long = "to",
        env = "TOUCHMARK_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub to: DatabaseUrl,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Migrated {
    from: String,
    to: String,
    tables: Vec<Table>,
    log_size: u64,
    log_root: Option<String>,
    events: u64,
    orders_checked: usize,
}

#[derive(Serialize)]
struct Table {
    name: String,
    rows: u64,
}

/// Runs `touchmark migrate`.
///
/// # Errors
/// When the installation or the database cannot be opened, the target is not empty, the copy
/// fails (nothing is then left behind: it is one transaction), or the copy does not match.
pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let dir = args.data.dir;
    let path = Installation::database_path(&dir);
    if !path.exists() {
        bail!(
            "{} holds no SQLite database (touchmark.db) to migrate",
            dir.display()
        );
    }
    let verifier_path = dir.join("log-verifier.txt");
    let verifier_text = std::fs::read_to_string(&verifier_path)
        .with_context(|| format!("cannot read {}", verifier_path.display()))?;
    let verifier = NoteVerifier::parse(verifier_text.trim())
        .map_err(|e| anyhow::anyhow!("{}: {e}", verifier_path.display()))?;
    let target = PostgresStore::connect(args.to.expose(), None)
        .await
        .with_context(|| format!("cannot open the PostgreSQL database {}", args.to))?;
    let copied = touchmark_store_postgres::import::sqlite_to_postgres(&path, &target)
        .await
        .with_context(|| format!("cannot copy {} into {}", path.display(), args.to))?;

    // Prove the copy through the same interface the server uses.
    let source: Arc<dyn Store> = Arc::new(SqliteStore::open(&path)?);
    let target: Arc<dyn Store> = Arc::new(target);
    let (events, orders_checked) = compare(&source, &target).await?;
    let log_size = match target.log_state().await? {
        Some(state) => {
            SignedCheckpoint::open(state.note.as_bytes(), &verifier).map_err(|e| {
                anyhow::anyhow!(
                    "the migrated checkpoint does not verify with {}: {e}",
                    verifier_path.display()
                )
            })?;
            state.size
        }
        None => 0,
    };
    let done = Migrated {
        from: path.display().to_string(),
        to: args.to.to_string(),
        tables: copied
            .tables
            .iter()
            .map(|(name, rows)| Table {
                name: name.clone(),
                rows: *rows,
            })
            .collect(),
        log_size,
        log_root: copied.log_root.map(|r| r.to_hex()),
        events,
        orders_checked,
    };
    if args.json {
        return output::json(&done);
    }
    println!("Copied {} into {}", done.from, done.to);
    let mut table = output::Table::new(&["table", "rows"]);
    for t in &done.tables {
        table.row(vec![t.name.clone(), t.rows.to_string()]);
    }
    table.print();
    output::fields(&[
        ("events", done.events.to_string()),
        ("orders checked", done.orders_checked.to_string()),
        ("signed log size", done.log_size.to_string()),
        ("log root", output::or_dash(done.log_root.as_deref())),
    ]);
    println!(
        "\nNext: touchmark serve --data {} --database {} (on every replica)",
        dir.display(),
        done.to
    );
    Ok(())
}

/// Compares what both stores answer: every event's bytes, and every order's record and counts.
async fn compare(source: &Arc<dyn Store>, target: &Arc<dyn Store>) -> anyhow::Result<(u64, usize)> {
    let events = source.event_count().await?;
    let copied = target.event_count().await?;
    if events != copied {
        bail!("the copy holds {copied} events, the source {events}");
    }
    let mut start = 0;
    while start < events {
        let (a, b) = (
            source.events(start, 1000).await?,
            target.events(start, 1000).await?,
        );
        if a != b {
            bail!("the events from index {start} differ after the copy");
        }
        start += a.len().max(1) as u64;
    }
    let orders = source.orders().await?;
    if orders != target.orders().await? {
        bail!("the orders differ after the copy");
    }
    for order in &orders {
        let (a, b) = (
            source.order_counts(&order.id).await?,
            target.order_counts(&order.id).await?,
        );
        if a != b {
            bail!(
                "order {}'s counts differ after the copy: {a:?} vs {b:?}",
                order.id
            );
        }
        if source.units(&order.id).await? != target.units(&order.id).await? {
            bail!("order {}'s units differ after the copy", order.id);
        }
    }
    if source.log_state().await? != target.log_state().await? {
        bail!("the signed log state differs after the copy");
    }
    Ok((events, orders.len()))
}
