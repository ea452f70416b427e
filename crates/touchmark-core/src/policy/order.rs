//! An order's life and its quota (design.md §3): draft → open → closed | cancelled, and quota
//! changes that are themselves logged. Each rule takes the order as the store holds it, under
//! its lock, and returns the change to apply with the event that records it.

use time::OffsetDateTime;

use crate::code::{ErrorCode, Refusal};
use crate::event::{Actor, Event, EventBody};
use crate::order::{MAX_QUOTA, Order, OrderState};

/// A change to an order, and the event that records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderChange {
    /// The order's state afterwards.
    pub state: OrderState,
    /// The order's quota afterwards.
    pub quota: u64,
    /// The event that records the change.
    pub event: Event,
}

/// Whether an order may move from `from` to `to`.
pub fn may_become(from: OrderState, to: OrderState) -> bool {
    matches!(
        (from, to),
        (OrderState::Draft, OrderState::Open)
            | (OrderState::Draft, OrderState::Cancelled)
            | (OrderState::Open, OrderState::Closed)
            | (OrderState::Open, OrderState::Cancelled)
    )
}

/// Opens, closes or cancels `order`.
///
/// # Errors
/// `invalid_request` for a move back to draft; `conflict` when the order's state does not
/// allow the move.
pub fn transition(
    order: &Order,
    to: OrderState,
    actor: Actor,
    at: OffsetDateTime,
) -> Result<OrderChange, Refusal> {
    let id = order.id.clone();
    let body = match to {
        OrderState::Open => EventBody::OrderOpened { order: id, actor },
        OrderState::Closed => EventBody::OrderClosed { order: id, actor },
        OrderState::Cancelled => EventBody::OrderCancelled { order: id, actor },
        OrderState::Draft => {
            return Err(Refusal::new(
                ErrorCode::InvalidRequest,
                "an order cannot return to draft",
            ));
        }
    };
    if !may_become(order.state, to) {
        return Err(Refusal::new(
            ErrorCode::Conflict,
            format!(
                "order {} is {} and cannot become {to}",
                order.id, order.state
            ),
        ));
    }
    Ok(OrderChange {
        state: to,
        quota: order.quota,
        event: Event::new(at, body),
    })
}

/// Checks a quota on its own: at most [`MAX_QUOTA`].
///
/// # Errors
/// `invalid_request` above the maximum.
pub fn check_quota(quota: u64) -> Result<u64, Refusal> {
    if quota > MAX_QUOTA {
        return Err(Refusal::new(
            ErrorCode::InvalidRequest,
            format!("quota must be at most {MAX_QUOTA}"),
        ));
    }
    Ok(quota)
}

/// Changes `order`'s quota to `quota`. The change is final once the order is closed or
/// cancelled, and never goes below what was issued.
///
/// # Errors
/// `invalid_request` above the maximum; `conflict` for a closed or cancelled order, a quota
/// below the issued count, or the quota it already has.
pub fn change_quota(
    order: &Order,
    quota: u64,
    actor: Actor,
    at: OffsetDateTime,
) -> Result<OrderChange, Refusal> {
    let quota = check_quota(quota)?;
    let conflict = |message: String| Err(Refusal::new(ErrorCode::Conflict, message));
    if matches!(order.state, OrderState::Closed | OrderState::Cancelled) {
        return conflict(format!(
            "order {} is {}; its quota is final",
            order.id, order.state
        ));
    }
    if quota < order.issued {
        return conflict(format!(
            "order {} has issued {} units; the quota cannot go below that",
            order.id, order.issued
        ));
    }
    if quota == order.quota {
        return conflict(format!("order {} already has quota {quota}", order.id));
    }
    Ok(OrderChange {
        state: order.state,
        quota,
        event: Event::new(
            at,
            EventBody::QuotaChanged {
                order: order.id.clone(),
                old_quota: order.quota,
                new_quota: quota,
                actor,
            },
        ),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use time::macros::datetime;

    use super::*;
    use crate::id::{FactoryId, OrderId, ProductId};
    use crate::serial::SerialRule;

    const AT: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn order(state: OrderState, quota: u64, issued: u64) -> Order {
        Order {
            id: OrderId::parse("PO-1").unwrap(),
            product: ProductId::parse("p").unwrap(),
            factory: FactoryId::parse("f").unwrap(),
            quota,
            issued,
            serial_rule: SerialRule::Any,
            not_before: None,
            not_after: None,
            state,
            created_at: datetime!(2026-01-01 0:00 UTC),
        }
    }

    #[test]
    fn transitions_follow_the_lifecycle() {
        use OrderState::*;
        let cases = [
            ("open a draft", Draft, Open, None),
            ("cancel a draft", Draft, Cancelled, None),
            ("close an open order", Open, Closed, None),
            ("cancel an open order", Open, Cancelled, None),
            ("close a draft", Draft, Closed, Some(ErrorCode::Conflict)),
            (
                "reopen a closed order",
                Closed,
                Open,
                Some(ErrorCode::Conflict),
            ),
            (
                "reopen a cancelled order",
                Cancelled,
                Open,
                Some(ErrorCode::Conflict),
            ),
            ("open an open order", Open, Open, Some(ErrorCode::Conflict)),
            (
                "close a closed order",
                Closed,
                Closed,
                Some(ErrorCode::Conflict),
            ),
            (
                "back to draft",
                Open,
                Draft,
                Some(ErrorCode::InvalidRequest),
            ),
        ];
        for (name, from, to, want) in cases {
            let o = order(from, 5, 2);
            match (transition(&o, to, Actor::System, AT), want) {
                (Ok(change), None) => {
                    assert_eq!((change.state, change.quota), (to, 5), "{name}");
                    assert_eq!(change.event.at, AT, "{name}");
                    assert_eq!(change.event.body.order(), Some(&o.id), "{name}");
                }
                (Err(refusal), Some(code)) => assert_eq!(refusal.code, code, "{name}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn quota_changes_are_logged_and_bounded() {
        use OrderState::*;
        let cases = [
            ("raise an open order", Open, 10, None),
            ("lower to the issued count", Open, 2, None),
            ("raise a draft", Draft, 7, None),
            ("below the issued count", Open, 1, Some(ErrorCode::Conflict)),
            ("the same quota", Open, 5, Some(ErrorCode::Conflict)),
            ("a closed order", Closed, 10, Some(ErrorCode::Conflict)),
            (
                "a cancelled order",
                Cancelled,
                10,
                Some(ErrorCode::Conflict),
            ),
            (
                "above the maximum",
                Open,
                MAX_QUOTA + 1,
                Some(ErrorCode::InvalidRequest),
            ),
        ];
        for (name, state, quota, want) in cases {
            let o = order(state, 5, 2);
            match (change_quota(&o, quota, Actor::System, AT), want) {
                (Ok(change), None) => {
                    assert_eq!((change.state, change.quota), (state, quota), "{name}");
                    assert_eq!(
                        change.event.body,
                        EventBody::QuotaChanged {
                            order: o.id.clone(),
                            old_quota: 5,
                            new_quota: quota,
                            actor: Actor::System
                        },
                        "{name}"
                    );
                }
                (Err(refusal), Some(code)) => {
                    assert_eq!(refusal.code, code, "{name}");
                    assert!(refusal.message.contains("quota"), "{name}: {refusal}");
                }
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
        assert_eq!(check_quota(MAX_QUOTA), Ok(MAX_QUOTA));
    }
}
