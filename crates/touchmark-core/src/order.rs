//! Production orders: quota, serial rule, time window and state (DESIGN §3).

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::code::{ErrorCode, Refusal};
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

    /// Whether an order may move from this state to `to`.
    pub fn can_become(self, to: OrderState) -> bool {
        matches!(
            (self, to),
            (Self::Draft, Self::Open)
                | (Self::Draft, Self::Cancelled)
                | (Self::Open, Self::Closed)
                | (Self::Open, Self::Cancelled)
        )
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
    /// Check 2 of DESIGN §4: the order is open and `now` is inside its window.
    ///
    /// # Errors
    /// `order_not_open` or `order_expired`.
    pub fn check_accepting(&self, now: OffsetDateTime) -> Result<(), Refusal> {
        if self.state != OrderState::Open {
            return Err(Refusal::new(
                ErrorCode::OrderNotOpen,
                format!("order {} is {}, not open", self.id, self.state),
            ));
        }
        if self.not_before.is_some_and(|t| now < t) {
            return Err(Refusal::new(
                ErrorCode::OrderExpired,
                format!(
                    "order {} does not accept units before its window opens",
                    self.id
                ),
            ));
        }
        if self.not_after.is_some_and(|t| now > t) {
            return Err(Refusal::new(
                ErrorCode::OrderExpired,
                format!(
                    "order {} stopped accepting units when its window closed",
                    self.id
                ),
            ));
        }
        Ok(())
    }

    /// Units the order may still issue.
    pub fn remaining(&self) -> u64 {
        self.quota.saturating_sub(self.issued)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use time::macros::datetime;

    use super::*;

    fn order(state: OrderState) -> Order {
        Order {
            id: OrderId::parse("PO-1").unwrap(),
            product: ProductId::parse("p").unwrap(),
            factory: FactoryId::parse("f").unwrap(),
            quota: 5,
            issued: 2,
            serial_rule: SerialRule::Any,
            not_before: Some(datetime!(2026-01-01 0:00 UTC)),
            not_after: Some(datetime!(2026-12-31 0:00 UTC)),
            state,
            created_at: datetime!(2025-12-01 0:00 UTC),
        }
    }

    #[test]
    fn only_open_orders_inside_their_window_accept() {
        let cases = [
            (
                "open, inside",
                OrderState::Open,
                datetime!(2026-06-01 0:00 UTC),
                None,
            ),
            (
                "draft",
                OrderState::Draft,
                datetime!(2026-06-01 0:00 UTC),
                Some(ErrorCode::OrderNotOpen),
            ),
            (
                "closed",
                OrderState::Closed,
                datetime!(2026-06-01 0:00 UTC),
                Some(ErrorCode::OrderNotOpen),
            ),
            (
                "cancelled",
                OrderState::Cancelled,
                datetime!(2026-06-01 0:00 UTC),
                Some(ErrorCode::OrderNotOpen),
            ),
            (
                "too early",
                OrderState::Open,
                datetime!(2025-12-31 23:59 UTC),
                Some(ErrorCode::OrderExpired),
            ),
            (
                "too late",
                OrderState::Open,
                datetime!(2026-12-31 0:01 UTC),
                Some(ErrorCode::OrderExpired),
            ),
        ];
        for (name, state, now, want) in cases {
            let got = order(state).check_accepting(now).err().map(|r| r.code);
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn transitions_follow_the_lifecycle() {
        use OrderState::*;
        assert!(Draft.can_become(Open) && Open.can_become(Closed) && Open.can_become(Cancelled));
        assert!(!Closed.can_become(Open) && !Cancelled.can_become(Open) && !Open.can_become(Draft));
        assert_eq!(order(Open).remaining(), 3);
    }
}
