//! A schema of its own for one test or benchmark run, in a shared PostgreSQL database, dropped
//! with everything in it when the run ends, even by a panic.

use std::hash::{BuildHasher, Hasher};

use crate::PostgresStore;

/// A fresh schema `tm_scratch_<16 hex>`; dropped when this is dropped.
#[derive(Debug)]
pub struct ScratchSchema {
    url: String,
    name: String,
}

impl ScratchSchema {
    /// A new, unique schema name in the database at `url`. Nothing is created until a store
    /// connects to it ([`ScratchSchema::connect`]); the guard drops it either way.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            name: format!("tm_scratch_{:016x}", random_u64()),
        }
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A store on this schema, creating and migrating it on first use. Each call opens a pool
    /// of its own, as another server replica would.
    ///
    /// # Errors
    /// As [`PostgresStore::connect`].
    pub async fn connect(&self) -> touchmark_store::Result<PostgresStore> {
        PostgresStore::connect(&self.url, Some(&self.name)).await
    }
}

impl Drop for ScratchSchema {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.name.clone());
        // `Drop` cannot await, and the caller's runtime cannot be blocked on from inside: a
        // thread of its own, with a runtime of its own, on a connection of its own.
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime
                .block_on(PostgresStore::drop_schema(&url, &schema))
                .map_err(|e| e.to_string())
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(schema = %self.name, error = %e, "a scratch schema was left behind")
            }
            Err(_) => {
                tracing::warn!(schema = %self.name, "a scratch schema was left behind: its cleanup panicked")
            }
        }
    }
}

/// 64 random bits from the standard library's per-process random hasher keys, mixed with the
/// time and the process id: names of concurrent runs never collide.
fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    hasher.write_u32(std::process::id());
    hasher.finish()
}
