//! Touchmark's benchmarks: honest, repeatable measurements of the hot path and of the audit
//! log, run in this process against a fresh installation.
//!
//! [`provision::run`] starts a real Touchmark server (a fresh installation, the SQLite store
//! with WAL and `synchronous=FULL`, or a PostgreSQL database with one or more replicas; HTTPS
//! with station mTLS), enrolls one station per concurrent worker over the API, and provisions
//! pre-generated units through the typed client on kept-alive connections. Every figure is the
//! median of several rounds, every unit of every round must come back issued (HTTP 201), and
//! the order's count must match what was sent: a run that measured errors fails instead of
//! giving a number. Beside it, the same run measures the machine's ceilings (raw ECDSA P-256,
//! CSR → certificate without I/O, a durable SQLite commit) and, optionally, Cloudflare's cfssl
//! on the same CSRs.
//!
//! [`log::run`] measures the audit log: durable appends, sequencing, and a full audit of a
//! large log over HTTPS, against the machine's raw SHA-256 rate and the provisioning cost per
//! unit.
//!
//! [`scale::run`] provisions one order of a million units (a quarter of that on PostgreSQL)
//! in slices, and reports whether the throughput stays flat from the first tenth to the last,
//! the database's bytes per unit, the checkpoint lag and the time `audit verify` takes.
//! [`analytics::run`] measures an order's report over a large store of test records, on
//! SQLite or PostgreSQL.
//!
//! [`affected::run`] measures the units a vulnerability report affects over a million units;
//! [`intake::run`] floods the public vulnerability intake from one address and times the
//! admins' requests meanwhile.
//!
//! [`ocsp::run`] measures revocation: cached OCSP answers per second beside `openssl ocsp`,
//! the time from a revocation to refreshed CRL and OCSP answers, and a large CRL's size.
//!
//! Each run reports its long steps to a [`Progress`], and returns a report that serializes
//! whole; printing it is the caller's.

pub mod affected;
pub mod analytics;
mod cfssl;
mod cpu;
mod crypto;
pub mod delivery;
mod error;
pub mod firmware;
pub mod intake;
mod load;
pub mod log;
pub mod ocsp;
pub mod provision;
pub mod report;
pub mod scale;
mod setup;
mod units;

pub use crate::error::Error;

/// Where a benchmark reports what it is doing, one line per long step (the command line prints
/// each on stderr, so that JSON output stays clean).
pub trait Progress: Send + Sync {
    /// The run reached `line`.
    fn step(&self, line: &str);
}

/// A [`Progress`] that reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn step(&self, _: &str) {}
}
