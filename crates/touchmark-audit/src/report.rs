//! What an audit found: the per-order story the events tell, and every violation, each naming
//! the entry index or the tile path that is wrong.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use touchmark_core::replay::{KeyReport, OrderReport, StationReport, Suspect};

use crate::Error;

/// The kind of a violation. The first group breaks the log itself (design.md §6, specs/TLOG.md);
/// the last two are about what the verified events say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// A tile or entry bundle the checkpoint's tree needs is not there.
    MissingTile,
    /// A tile or entry bundle has the wrong length or cannot be decoded.
    MalformedTile,
    /// A hash tile differs from the one recomputed from the entries.
    TileMismatch,
    /// An entry differs from the one the signed tree holds.
    EntryMismatch,
    /// The entries do not lead to the checkpoint's root.
    RootMismatch,
    /// The log is smaller than a checkpoint verified earlier.
    Truncation,
    /// The log is not an extension of a checkpoint verified earlier.
    Fork,
    /// An entry is not a canonical event of the schema (docs/events.md).
    BadEntry,
    /// The events break an invariant (over quota, a serial or key twice, a revoked station...).
    Replay,
}

impl ViolationKind {
    /// Whether the violation means the log's tree cannot be trusted (as opposed to a
    /// trustworthy log that records something wrong).
    pub fn breaks_the_tree(self) -> bool {
        !matches!(self, Self::BadEntry | Self::Replay)
    }

    /// The kind's name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingTile => "missing_tile",
            Self::MalformedTile => "malformed_tile",
            Self::TileMismatch => "tile_mismatch",
            Self::EntryMismatch => "entry_mismatch",
            Self::RootMismatch => "root_mismatch",
            Self::Truncation => "truncation",
            Self::Fork => "fork",
            Self::BadEntry => "bad_entry",
            Self::Replay => "replay",
        }
    }
}

/// One violation. The message names the entry index or the tile path on its own; `index` and
/// `tile` repeat them for scripts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// What kind of violation.
    pub kind: ViolationKind,
    /// The log index of the offending entry, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// The path (under `/log/`) of the offending tile or bundle, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tile: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A checkpoint, as shown in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TreeHead {
    /// The number of entries.
    pub size: u64,
    /// The root hash, in base64 as in the checkpoint.
    pub root: String,
}

/// The whole result of `audit verify`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The log's origin (its key name).
    pub origin: String,
    /// The verified checkpoint.
    pub checkpoint: TreeHead,
    /// The checkpoint verified by the previous run (from the state file), if any.
    pub previous: Option<TreeHead>,
    /// Entries that parsed as events and were replayed.
    pub events: u64,
    /// Per order: quota history, units issued, failed tests, refusals by code.
    pub orders: BTreeMap<String, OrderReport>,
    /// Every refusal of the clone class, in log order: a unit that presented another unit's
    /// serial, key or test record (`serial_conflict`, `key_reused`, `test_record_mismatch`,
    /// `test_record_reused`). Refused, so not violations, but each one is evidence of a
    /// counterfeit or a replayed record at the station named.
    pub suspects: Vec<Suspect>,
    /// Per station that has any: its refusal flood alerts (`station.refusal_flood`), and the
    /// refusals they counted instead of logging one by one, by code.
    pub refusal_floods: BTreeMap<String, StationReport>,
    /// The installation's private keys the log records (`key.generated`), by name: algorithm,
    /// where each lives, its public key hash, and when it was made.
    pub keys: BTreeMap<String, KeyReport>,
    /// Every violation found, integrity violations first.
    pub violations: Vec<Violation>,
}

impl Report {
    /// Whether the tree itself verified: signature (checked before a report exists), tiles,
    /// root, and consistency with the previous checkpoint.
    pub fn tree_verified(&self) -> bool {
        !self.violations.iter().any(|v| v.kind.breaks_the_tree())
    }

    /// `Ok` when there is no violation at all; otherwise an error naming the first few.
    ///
    /// # Errors
    /// [`Error::Violations`] when the report holds any violation.
    pub fn verdict(&self) -> Result<(), Error> {
        const SHOWN: usize = 3;
        if self.violations.is_empty() {
            return Ok(());
        }
        let mut summary = self
            .violations
            .iter()
            .take(SHOWN)
            .map(|v| v.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        if self.violations.len() > SHOWN {
            summary.push_str("; …");
        }
        Err(Error::Violations {
            origin: self.origin.clone(),
            size: self.checkpoint.size,
            count: self.violations.len(),
            summary,
        })
    }
}
