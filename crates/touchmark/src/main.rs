//! The `touchmark` command: parse the arguments, run the subcommand, report errors.

mod args;
mod cli;
mod commands;
mod config;
mod database;
mod output;
mod secrets;
mod shutdown;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, StationCommand};
use crate::commands::{admin, audit, bench, demo, fixture, init, migrate, roots, run, serve};

// Issuance allocates many small, short-lived buffers across threads (TLS records, JSON, DER);
// mimalloc serves them with less contention than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TOUCHMARK_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(refused) = e.downcast_ref::<fixture::Refused>() {
                eprintln!("{refused}");
                return ExitCode::from(2);
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init(args) => init::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::SplitRoots(args) => roots::run(args),
        Command::Migrate(args) => migrate::run(args).await,
        Command::Product(c) => admin::product(c).await,
        Command::Factory(c) => admin::factory(c).await,
        Command::Station(StationCommand::Admin(c)) => admin::station(c).await,
        Command::Station(StationCommand::Enroll(args)) => fixture::enroll(args).await,
        Command::Station(StationCommand::Provision(args)) => fixture::provision(args).await,
        Command::Station(StationCommand::Run(args)) => run::run(args).await,
        Command::Station(StationCommand::Receipt(args)) => fixture::receipt(args).await,
        Command::Order(c) => admin::order(c).await,
        Command::Unit(c) => admin::unit(c).await,
        Command::Token(c) => admin::token(c).await,
        Command::Events(args) => admin::events(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Audit(args) => audit::run(args).await,
    }
}
