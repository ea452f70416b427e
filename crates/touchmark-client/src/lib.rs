//! A typed HTTP client for Touchmark's `/v1` API, used by the CLI, the stations and the tests,
//! and the station's side of it: enrollment and the station directory ([`station`]), and the
//! line simulator ([`sim`]).
//!
//! The client speaks HTTPS only and trusts only the root CA(s) it is given, never the system's.
//! Admins and auditors authenticate with a bearer token, stations with an mTLS identity
//! (design.md §2). Requests and answers are the wire types of [`touchmark_core::api`]; every
//! error the server sends becomes [`ClientError::Api`] with its stable code.
//!
//! ```no_run
//! # async fn run(ca_pem: String) -> Result<(), touchmark_client::ClientError> {
//! use touchmark_client::{Client, ClientConfig};
//!
//! let mut config = ClientConfig::new("https://localhost:8443", ca_pem);
//! config.token = Some("tm_...".into());
//! let client = Client::new(config)?;
//! let health = client.health().await?;
//! println!("log size {}", health.log_size);
//! # Ok(())
//! # }
//! ```

mod client;
mod config;
pub mod element;
mod error;
mod path;
pub mod sim;
pub mod station;

pub use client::{Client, RevocationKind};
pub use config::{ClientConfig, Identity};
pub use error::ClientError;
pub use touchmark_core::ErrorCode;
pub use touchmark_core::api;
