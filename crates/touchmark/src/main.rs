//! The `touchmark` command: parse the arguments, run the subcommand, report errors.

mod args;
mod cli;
mod commands;
mod config;
mod database;
mod output;
mod secrets;
mod shutdown;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use touchmark_client::ClientError;

use crate::cli::{Cli, Command, LogFormat, StationCommand};
use crate::commands::oversight;
use crate::commands::{
    admin, audit, backup, bench, demo, doctor, firmware, fixture, init, keys, manual, migrate,
    roots, run, serve,
};

// Issuance allocates many small, short-lived buffers across threads (TLS records, JSON, DER);
// mimalloc serves them with less contention than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A server logs each request at `info`; a client command only what goes wrong.
    let level = match &cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    logging(cli.log_format, level);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let verbose = cli.verbose;
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e, verbose),
    }
}

/// The exit status when the server could not be reached or trusted: nothing was sent, and
/// the same command may work once the URL, the server or the CA is right.
const EXIT_TRANSPORT: u8 = 3;

/// Prints a failed command's error, and returns its exit status: 2 for a refusal by the
/// server's policy, 3 when the server could not be reached or trusted (with what to check, a
/// stable code, and with `-v` the underlying cause), 1 for anything else.
fn report(e: &anyhow::Error, verbose: bool) -> ExitCode {
    if let Some(refused) = e.downcast_ref::<fixture::Refused>() {
        eprintln!("{refused}");
        return ExitCode::from(2);
    }
    // The client's own error, or the auditor's fetch failure read the same way; what came
    // before it in the chain is the context, what came after is the cause, shown with -v.
    let mut context = Vec::new();
    let mut found = None;
    for cause in e.chain() {
        if let Some(client) = cause.downcast_ref::<ClientError>() {
            found = Some(std::borrow::Cow::Borrowed(client));
            break;
        }
        if let Some(client) = ClientError::from_transport(cause) {
            found = Some(std::borrow::Cow::Owned(client));
            break;
        }
        context.push(cause.to_string());
    }
    let Some(client) = found else {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    };
    context.push(client.to_string());
    eprintln!("error: {}", context.join(": "));
    let check = match client.as_ref() {
        ClientError::Unreachable { .. } => {
            "the URL (--server, or TOUCHMARK_SERVER; a station uses the URL it enrolled with \
             unless --server is given), and that `touchmark serve` is running there"
        }
        ClientError::Untrusted { .. } => {
            "--ca (or TOUCHMARK_CA; a station uses its directory's root-ca.pem): it must be the \
             root CA of the installation serving this URL (its data directory's \
             certs/root-ca.pem), and the URL must name that server"
        }
        _ => {
            if verbose && let Some(cause) = client.cause() {
                eprintln!("  cause: {cause}");
            }
            return ExitCode::FAILURE;
        }
    };
    eprintln!("  check: {check}");
    if let Some(code) = client.local_code() {
        eprintln!("  code:  {code}");
    }
    match (verbose, client.cause()) {
        (true, Some(cause)) => eprintln!("  cause: {cause}"),
        _ => eprintln!("  (run with -v for the underlying cause)"),
    }
    ExitCode::from(EXIT_TRANSPORT)
}

/// Sends diagnostics to standard error, filtered by TOUCHMARK_LOG (else `default_level`), as
/// text or JSON lines. Text has colours only on a terminal, and not with NO_COLOR set
/// (no-color.org), so a file or a pipe gets no escape sequences.
fn logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOUCHMARK_LOG")
        .unwrap_or_else(|_| default_level.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            builder.with_ansi(colour).init();
        }
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init(args) => init::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::SplitRoots(args) => roots::run(args),
        Command::Migrate(args) => migrate::run(args).await,
        Command::Product(c) => admin::product(c).await,
        Command::Ca(c) => crate::commands::ca::run(c).await,
        Command::Factory(c) => admin::factory(c).await,
        Command::Release(c) => firmware::release(c).await,
        Command::Station(StationCommand::Admin(c)) => admin::station(c).await,
        Command::Station(StationCommand::Enroll(args)) => fixture::enroll(args).await,
        Command::Station(StationCommand::Provision(args)) => fixture::provision(args).await,
        Command::Station(StationCommand::Run(args)) => run::run(args).await,
        Command::Station(StationCommand::Receipt(args)) => fixture::receipt(args).await,
        Command::Order(c) => admin::order(c).await,
        Command::Unit(c) => admin::unit(c).await,
        Command::Token(c) => admin::token(c).await,
        Command::Events(args) => admin::events(args).await,
        Command::Revoke(c) => crate::commands::revoke::run(c).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Backup(args) => backup::backup(args).await,
        Command::Restore(args) => backup::restore(args).await,
        Command::Doctor(args) => doctor::run(args).await,
        Command::Keys(c) => keys::run(c).await,
        Command::Completions(args) => manual::completions(&args),
        Command::Man(args) => manual::man(&args),
        Command::Report(c) => oversight::report(c).await,
        Command::Alert(c) => oversight::alert(c).await,
        Command::Webhook(c) => oversight::webhook(c).await,
        Command::Field(c) => crate::commands::field::run(c).await,
        Command::Device(c) => crate::commands::device::run(c).await,
        Command::Vuln(c) => crate::commands::vuln::run(c).await,
        Command::Sbom(args) => crate::commands::sbom::run(&args),
    }
}
