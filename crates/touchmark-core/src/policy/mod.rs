//! Every rule of Touchmark, each written once as a pure function: the facts in, the decision
//! out, with the event that records it.
//!
//! Nothing here reads a database or a clock. The authority gathers what a rule needs from the
//! request and calls it; a storage backend gathers what a rule needs under its locks, calls the
//! same function, and applies the result atomically. So the decision is the same wherever it is
//! taken, and the message a client reads is written in one place.
//!
//! - [`alerts`]: the oversight rules that raise alerts (design.md §9);
//! - [`firmware`]: a release's withdrawal, and what a unit in the field may receive;
//! - [`field`]: the verdict on a device seen in the field (issue 17);
//! - [`issue`]: design.md §4, checks 1 to 8, and the events of one provisioning request;
//! - [`order`]: an order's life (draft → open → closed | cancelled) and its quota;
//! - [`refusals`]: how often a station refused for want of standing is logged, and its flood
//!   alert;
//! - [`station`]: a station's revocation;
//! - [`revocation`]: revoking units, orders, CAs and a station's units by provenance;
//! - [`vuln`]: a vulnerability report's states, its CRA classification and clocks.

pub mod alerts;
pub mod field;
pub mod firmware;
pub mod issue;
pub mod order;
pub mod refusals;
pub mod revocation;
pub mod station;
pub mod vuln;
