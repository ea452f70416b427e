//! `touchmark station run`: the fixture client as a line simulator (`touchmark_client::sim`),
//! with live progress and a summary.

use clap::Args;
use serde::Serialize;
use touchmark_client::sim::{Run, Tally};
use touchmark_client::station::StationDir;

use crate::args::{StationDirArgs, StationServerArgs};
use crate::output::{self, Table};

/// Arguments of `station run`.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// The order to provision against.
    #[arg(long)]
    pub order: String,
    /// How many units to simulate.
    #[arg(long, default_value_t = 100)]
    pub units: u64,
    /// Serial prefix.
    #[arg(long, default_value = "SN-")]
    pub prefix: String,
    /// Number of the first serial (serials are PREFIX + a zero-padded number).
    #[arg(long, default_value_t = 1)]
    pub first: u64,
    /// Digits of the serial number.
    #[arg(long, default_value_t = 6)]
    pub digits: usize,
    /// Units in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Share of units that fail their test, 0.0 to 1.0.
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Extra units that reuse an earlier unit's serial with a new key (expect `serial_conflict`).
    #[arg(long, default_value_t = 0)]
    pub clone_serials: u64,
    /// Extra units that reuse an earlier unit's key with a new serial (expect `key_reused`).
    #[arg(long, default_value_t = 0)]
    pub clone_keys: u64,
    /// Most units started per second (0: no limit).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Seed for the simulated test results, so a run can be repeated.
    #[arg(long)]
    pub seed: Option<u64>,
    /// The station directory.
    #[command(flatten)]
    pub station: StationDirArgs,
    /// The server, when it is not the one the station enrolled with.
    #[command(flatten)]
    pub server: StationServerArgs,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Summary<'a> {
    station: &'a str,
    order: &'a str,
    #[serde(flatten)]
    tally: &'a Tally,
    units_per_second: f64,
}

/// Prints a tally as a table of outcomes.
pub fn print_tally(tally: &Tally) {
    let mut table = Table::new(&["OUTCOME", "UNITS"]);
    table.row(vec!["issued".into(), tally.issued.to_string()]);
    if tally.already_issued > 0 {
        table.row(vec![
            "already issued (retry)".into(),
            tally.already_issued.to_string(),
        ]);
    }
    if tally.firmware_opened > 0 {
        table.row(vec![
            "firmware opened with the unit's own key".into(),
            tally.firmware_opened.to_string(),
        ]);
    }
    for (code, n) in &tally.refused {
        table.row(vec![format!("refused: {code}"), n.to_string()]);
    }
    for (message, n) in &tally.errors {
        table.row(vec![format!("error: {message}"), n.to_string()]);
    }
    table.row(vec!["total".into(), tally.sent.to_string()]);
    table.print();
}

/// Runs `station run`.
///
/// # Errors
/// For bad arguments, a station directory that is not enrolled, or a failure to make keys.
/// Refusals are outcomes, not errors.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let run = Run {
        order: args.order.clone(),
        units: args.units,
        prefix: args.prefix,
        first: args.first,
        digits: args.digits,
        concurrency: args.concurrency,
        fail_rate: args.fail_rate,
        clone_serials: args.clone_serials,
        clone_keys: args.clone_keys,
        rate: args.rate,
        seed: args.seed,
    };
    run.check()?;
    let (client, station) = StationDir::new(&args.station.dir)
        .server(args.server.url)
        .client()?;
    let show = !args.quiet && !args.json;
    let bar = show.then(|| {
        let bar = output::bar(run.total(), &station);
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar
    });
    let done = run.run(client, bar.clone().map(output::on_unit)).await?;
    if done.nothing_to_clone {
        eprintln!("warning: no unit was issued, so there is nothing to clone");
    }
    let tally = done.tally;
    if let Some(bar) = bar {
        // Left where it stopped: every unit sent counted once, so the total when all were.
        bar.abandon();
    }
    let summary = Summary {
        station: &station,
        order: &args.order,
        tally: &tally,
        units_per_second: tally.sent as f64 / tally.seconds.max(1e-3),
    };
    if args.json {
        return output::json(&summary);
    }
    println!(
        "\nStation {station}, order {}: {} units in {:.1} s ({:.0} units/s)",
        args.order, tally.sent, tally.seconds, summary.units_per_second
    );
    print_tally(&tally);
    Ok(())
}
