//! Touchmark's read side (design.md §9): what the stored test records say, folded into a
//! unit's history and an order's report. It reads through `touchmark_store::TestDataStore` and
//! decides nothing; the statistics are pure functions ([`stats`]), checked against numpy.

pub mod history;
pub mod report;
pub mod stats;

pub use history::unit_history;
pub use report::order_report;
