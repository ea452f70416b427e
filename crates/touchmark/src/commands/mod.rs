//! One module per group of subcommands.

pub mod admin;
pub mod audit;
pub mod bench;
pub mod demo;
pub mod fixture;
pub mod init;
pub mod migrate;
pub mod roots;
pub mod run;
pub mod serve;
