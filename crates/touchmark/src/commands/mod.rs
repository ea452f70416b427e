//! One module per group of subcommands.

pub mod admin;
pub mod audit;
pub mod backup;
pub mod bench;
pub mod ca;
pub mod demo;
pub mod device;
pub mod doctor;
pub mod field;
pub mod firmware;
pub mod fixture;
pub mod init;
pub mod keys;
pub mod manual;
pub mod migrate;
pub mod oversight;
pub mod revoke;
pub mod roots;
pub mod run;
pub mod sbom;
pub mod serve;
pub mod vuln;
