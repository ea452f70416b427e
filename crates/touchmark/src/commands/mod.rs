//! One module per group of subcommands.

pub mod admin;
pub mod fixture;
pub mod init;
pub mod serve;
