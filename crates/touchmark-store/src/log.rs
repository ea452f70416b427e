//! The log's storage rules, the same on every backend: whose lease may write, and what a new
//! checkpoint may replace. A backend reads the facts in its transaction and calls these.

use crate::{LogConflict, SequencerLease, StoreError};

/// The lease row as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// Who holds it.
    pub holder: String,
    /// Its generation.
    pub epoch: u64,
    /// Whether it has not expired, by the store's clock.
    pub live: bool,
}

/// Fails with [`StoreError::Fenced`] unless `lease` is the live lease `current`.
///
/// # Errors
/// [`StoreError::Fenced`] naming the current holder.
pub fn check_lease(lease: &SequencerLease, current: Option<LeaseRow>) -> Result<(), StoreError> {
    match current {
        Some(row) if row.live && row.holder == lease.holder && row.epoch == lease.epoch => Ok(()),
        Some(row) => Err(StoreError::Fenced(format!(
            "held by {} in epoch {}, not by {} in epoch {} (or expired)",
            row.holder, row.epoch, lease.holder, lease.epoch
        ))),
        None => Err(StoreError::Fenced("no lease was ever granted".into())),
    }
}

/// What a checkpoint save is checked against, as read in the save's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedLog {
    /// The saved state's size, if the log signed before.
    pub saved: Option<u64>,
    /// The largest signed checkpoint's size.
    pub signed: Option<u64>,
    /// How many events hold an index.
    pub events: u64,
}

/// Whether a checkpoint of `size`, signed from the state of size `previous`, may be saved.
///
/// # Errors
/// [`StoreError::LogConflict`] saying which rule it breaks.
pub fn check_save(log: SavedLog, previous: Option<u64>, size: u64) -> Result<(), StoreError> {
    let conflict = |c| Err(StoreError::LogConflict(c));
    if log.saved != previous {
        return conflict(LogConflict::Moved {
            saved: log.saved,
            expected: previous,
        });
    }
    // Append-only: a checkpoint only moves forward, and one size has one root forever.
    if let Some(signed) = log.signed.filter(|&s| s >= size) {
        return conflict(LogConflict::NotNewer { signed, size });
    }
    if size > log.events {
        return conflict(LogConflict::BeyondEvents {
            size,
            events: log.events,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_save_extends_the_state_it_started_from() {
        let log = SavedLog {
            saved: Some(10),
            signed: Some(10),
            events: 20,
        };
        assert!(check_save(log, Some(10), 20).is_ok());
        assert!(check_save(log, Some(10), 11).is_ok());
        let cases = [
            ("another sequencer moved it", Some(9), 20),
            ("it shrinks", Some(10), 9),
            ("the same size again", Some(10), 10),
            ("beyond the events", Some(10), 21),
        ];
        for (name, previous, size) in cases {
            assert!(
                matches!(
                    check_save(log, previous, size),
                    Err(StoreError::LogConflict(_))
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn only_the_live_holder_may_write() {
        let lease = SequencerLease {
            holder: "a".into(),
            epoch: 3,
        };
        let row = |holder: &str, epoch, live| {
            Some(LeaseRow {
                holder: holder.into(),
                epoch,
                live,
            })
        };
        assert!(check_lease(&lease, row("a", 3, true)).is_ok());
        for current in [
            row("a", 3, false),
            row("a", 4, true),
            row("b", 3, true),
            None,
        ] {
            assert!(matches!(
                check_lease(&lease, current),
                Err(StoreError::Fenced(_))
            ));
        }
    }
}
