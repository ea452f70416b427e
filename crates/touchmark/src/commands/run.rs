//! `touchmark station run`: the fixture client as a line simulator.

use anyhow::bail;
use rand::Rng;
use serde::Serialize;

use crate::cli::RunArgs;
use crate::commands::fixture::station_client;
use crate::output::{self, Table};
use crate::sim::{self, Kind, Outcome, SimUnit, Tally, UnitKey};

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
    if !(0.0..=1.0).contains(&args.fail_rate) {
        bail!("--fail-rate must be between 0 and 1");
    }
    if !(1..=1024).contains(&args.concurrency) {
        bail!("--concurrency must be 1 to 1024");
    }
    if args.rate < 0.0 || !args.rate.is_finite() {
        bail!("--rate must be a positive number of units per second, or 0 for no limit");
    }
    if args.units > 1_000_000 {
        bail!("--units must be at most 1,000,000");
    }
    let last = args
        .first
        .checked_add(args.units + args.clone_keys)
        .filter(|n| n.to_string().len() <= args.digits);
    if last.is_none() {
        bail!(
            "serials from {} for {} units do not fit in {} digits",
            args.first,
            args.units,
            args.digits
        );
    }
    let (client, station) = station_client(&args.dir)?;
    let mut rng = sim::rng(args.seed);
    let serial = |n: u64| format!("{}{:0width$}", args.prefix, n, width = args.digits);
    let mut units = Vec::new();
    let mut keys: Vec<UnitKey> = Vec::new();
    for i in 0..args.units {
        let kind = if rng.random_bool(args.fail_rate) {
            Kind::FailsTest
        } else {
            Kind::Good
        };
        let (unit, key) = SimUnit::new(serial(args.first + i), kind, &mut rng)?;
        units.push(unit);
        keys.push(key);
    }
    let show = !args.quiet && !args.json;
    let bar = show.then(|| sim::bar(args.units + args.clone_serials + args.clone_keys, &station));
    let (mut tally, outcomes) = sim::run_line(
        client.clone(),
        args.order.clone(),
        units.clone(),
        args.concurrency,
        args.rate,
        bar.clone(),
    )
    .await;

    // Clones go after the line, against units that were really issued.
    let issued: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(i, o)| {
            matches!(o, Outcome::Issued | Outcome::AlreadyIssued) && units[*i].kind == Kind::Good
        })
        .map(|(i, _)| i)
        .collect();
    if (args.clone_serials > 0 || args.clone_keys > 0) && issued.is_empty() {
        eprintln!("warning: no unit was issued, so there is nothing to clone");
    } else {
        let mut clones = Vec::new();
        for j in 0..args.clone_serials as usize {
            let original = &units[issued[j % issued.len()]];
            let (unit, _) = SimUnit::new(original.serial.clone(), Kind::CloneSerial, &mut rng)?;
            clones.push(unit);
        }
        for j in 0..args.clone_keys {
            let original = &keys[issued[j as usize % issued.len()]];
            clones.push(SimUnit::clone_key(
                serial(args.first + args.units + j),
                original,
                &mut rng,
            )?);
        }
        if !clones.is_empty() {
            let (clone_tally, _) = sim::run_line(
                client,
                args.order.clone(),
                clones,
                args.concurrency,
                args.rate,
                bar.clone(),
            )
            .await;
            // The clones run after the line, so their time adds to it (merge keeps the longer
            // of two tallies, which is right for lines that run side by side).
            let line_seconds = tally.seconds;
            tally.merge(&clone_tally);
            tally.seconds = line_seconds + clone_tally.seconds;
        }
    }
    if let Some(bar) = bar {
        bar.finish();
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
