//! End-to-end tests of the `touchmark` binary: real processes, real TLS, real database files.
//!
//! - `crash`: SIGKILL the server in the middle of a provisioning run, restart it, finish the run.
//! - `mqtt`: a real Mosquitto broker accepts provisioned devices and refuses others.
//! - `readme`: the README's walk-through, run exactly as written.
//! - `sim`: the line simulator and the demo, as a factory engineer runs them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod crash;
mod kit;
mod log;
mod mqtt;
mod readme;
mod setup;
mod sim;
