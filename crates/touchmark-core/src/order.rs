//! Production orders: quota, serial rule, time window and state (design.md §3).

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::id::{FactoryId, OrderId, ProductId};
use crate::serial::SerialRule;

/// The state of an order: draft → open → closed | cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Created, not yet accepting units.
    Draft,
    /// Accepting units.
    Open,
    /// Finished; accepts nothing more.
    Closed,
    /// Abandoned; accepts nothing more.
    Cancelled,
}

impl OrderState {
    /// The state as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses a stored state.
    pub fn from_str_opt(text: &str) -> Option<Self> {
        [Self::Draft, Self::Open, Self::Closed, Self::Cancelled]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A production order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The order's identifier.
    pub id: OrderId,
    /// The product built.
    pub product: ProductId,
    /// The factory that builds it.
    pub factory: FactoryId,
    /// How many units may receive an identity.
    pub quota: u64,
    /// How many have.
    pub issued: u64,
    /// Which serials it admits.
    pub serial_rule: SerialRule,
    /// Units may not be provisioned before this time.
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_before: Option<OffsetDateTime>,
    /// Units may not be provisioned after this time.
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_after: Option<OffsetDateTime>,
    /// Where the order is in its life.
    pub state: OrderState,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Largest quota an order may have. Far above any real order, and well inside every
/// integer type that stores or transports it (SQLite, PostgreSQL `bigint`, JSON numbers).
pub const MAX_QUOTA: u64 = 1 << 40;

impl Order {
    /// Units the order may still issue.
    pub fn remaining(&self) -> u64 {
        self.quota.saturating_sub(self.issued)
    }
}
