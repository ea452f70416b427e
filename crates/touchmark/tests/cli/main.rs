//! End-to-end tests of the `touchmark` binary: real processes, real TLS, real database files.
//!
//! - `connect`: a station pointed at a server that moved (`--server`), and a server that is not
//!   running or not trusted reported with what to check.
//! - `connections`: a server limited to 1,024 open files, held by 2,300 idle, stalled and silent
//!   connections, still answers a station within a second.
//! - `crash`: SIGKILL the server in the middle of a provisioning run, restart it, finish the run.
//! - `datadir`: a SQLite data directory is served by one process at a time, and is private to
//!   its owner.
//! - `faults`: the sequencer's replica frozen with SIGSTOP under load: another takes over, the
//!   live replicas keep answering, and the woken one signs nothing.
//! - `hsm`: every key in a PKCS#11 token (SoftHSM2): init, `keys list`, serve with the PIN
//!   alone, the quota race and retries, openssl verifying chains signed in the token, and a
//!   misconfigured token refused at start-up.
//! - `logs`: one structured line per request at `info`, as JSON with `--log-format json`, and no
//!   colour codes on a pipe.
//! - `ops`: backups taken while units are provisioned, restored and served; `doctor` finding each
//!   broken thing; completions and manual pages that bash and roff accept.
//! - `mqtt`: a real Mosquitto broker accepts provisioned devices and refuses others, stations
//!   among them.
//! - `migrate`: a demo installation moves from SQLite to PostgreSQL with every record.
//! - `offline_root`: a device root kept offline (`init --root-cert`, openssl as the root):
//!   `ca csr`, the root signs, `ca install` checks and refuses by code; a unit verifies.
//! - `pkilint`: every kind of certificate an installation makes passes pkilint's RFC 5280
//!   linters.
//! - `pty`: the demo under a pseudo-terminal: its progress bars reach their totals.
//! - `readme`: the README, every `bash` block from the top to the bottom, run exactly as written.
//! - `replicas`: three servers on one PostgreSQL database: the quota holds, and the sequencer
//!   fails over.
//! - `roots`: a device root apart from the stations' and the server's, and the move to it of a
//!   data directory made with one root.
//! - `sbom`: `touchmark sbom`, Touchmark's own SBOM made at build time, against Cargo.lock and
//!   cyclonedx-python-lib's validator.
//! - `sim`: the line simulator and the demo, as a factory engineer runs them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod connect;
mod connections;
mod crash;
mod datadir;
mod faults;
mod hsm;
mod kit;
mod log;
mod logs;
mod migrate;
mod mqtt;
mod offline_root;
mod ops;
mod oversight;
mod pg;
mod pkilint;
mod pty;
mod readme;
mod replicas;
mod roots;
mod sbom;
mod setup;
mod sim;
mod vuln;
