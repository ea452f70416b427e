//! Touchmark's domain: identifiers, orders, the issuance policy, test records and log events.
//!
//! This crate knows nothing of HTTP or SQL. It turns raw input into checked types at the edge
//! ([`id`], [`serial`], [`field`], [`testrecord`], and the commands of [`command`]), decides
//! what the rules allow ([`policy`]: each rule once, as a pure function), and defines the
//! events that every state change appends to the log ([`event`]).

pub mod alert;
pub mod api;
pub mod canonical;
pub mod clock;
pub mod code;
pub mod command;
pub mod csaf;
pub mod cvss;
pub mod entity;
pub mod event;
pub mod field;
pub mod firmware;
pub mod id;
pub mod order;
pub mod oversight;
pub mod policy;
pub mod replay;
pub mod serial;
pub mod testrecord;
pub mod vers;
pub mod vuln;

pub use clock::{Clock, SystemClock};
pub use code::{ErrorCode, Refusal};
pub use id::{FactoryId, OrderId, ProductId, StationId, TokenId};
pub use serial::{Serial, SerialRule};
