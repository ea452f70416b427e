//! End-to-end tests of the `touchmark` binary: real processes, real TLS, real database files.
//!
//! - `crash`: SIGKILL the server in the middle of a provisioning run, restart it, finish the run.
//! - `readme`: the README's walk-through, run exactly as written.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod crash;
mod kit;
mod mqtt;
mod readme;
mod sim;
