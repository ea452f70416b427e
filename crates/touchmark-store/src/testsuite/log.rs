//! The audit log's signed state: checkpoints only move forward, never past the sequenced
//! events, and a checkpoint, its tiles and the tree state are saved together, by the lease
//! holder, over the state it started from (I5).

use std::sync::Arc;

use crate::{LogConflict, LogState, LogTile, Store, StoreError};
use touchmark_tlog::Hash;

use super::kit::{Kit, at, kit_lease, log_size};

fn state(size: u64, root: u8) -> LogState {
    LogState {
        size,
        root: Hash([root; 32]),
        note: format!("checkpoint {size}\n"),
        tree: vec![root; 8],
    }
}

fn tile(index: u64, hashes: usize) -> LogTile {
    LogTile {
        level: 0,
        index,
        data: vec![7; 32 * hashes],
    }
}

/// A saved checkpoint only moves forward: never back, never a second root for a size, never
/// past the events; a refused save keeps nothing.
pub async fn checkpoints_only_move_forward(store: Arc<dyn Store>) {
    assert_eq!(
        store.log_state().await.unwrap(),
        None,
        "a new store has signed nothing"
    );
    // The kit's set-up appends events (product, factory, stations, order).
    Kit::new(&store, "lg", 5, 1).await;
    let events = log_size(&store).await;
    assert!(events >= 3);

    let lease = kit_lease(&store).await;
    store
        .save_log_state(&lease, None, state(2, 1), vec![tile(0, 2)], at(1))
        .await
        .unwrap();
    store
        .save_log_state(&lease, Some(2), state(3, 2), vec![tile(0, 3)], at(2))
        .await
        .unwrap();
    assert_eq!(store.log_state().await.unwrap(), Some(state(3, 2)));
    assert_eq!(
        store.checkpoint_at(2).await.unwrap().as_deref(),
        Some("checkpoint 2\n")
    );
    assert_eq!(store.log_tile(0, 0).await.unwrap(), Some(vec![7; 96]));

    // Never backwards, never a second root for a signed size, never past the events.
    let cases = [
        (
            state(2, 9),
            "a smaller size",
            LogConflict::NotNewer { signed: 3, size: 2 },
        ),
        (
            state(3, 9),
            "the same size again",
            LogConflict::NotNewer { signed: 3, size: 3 },
        ),
        (
            state(events + 1, 9),
            "more entries than events",
            LogConflict::BeyondEvents {
                size: events + 1,
                events,
            },
        ),
    ];
    for (bad, why, want) in cases {
        let err = store
            .save_log_state(&lease, Some(3), bad, vec![tile(0, 1)], at(3))
            .await
            .unwrap_err();
        match err {
            StoreError::LogConflict(got) => assert_eq!(got, want, "{why}"),
            err => panic!("{why}: expected {want:?}, got {err:?}"),
        }
    }
    // Nothing of a refused save is kept: not the state, not its tile.
    assert_eq!(store.log_state().await.unwrap(), Some(state(3, 2)));
    assert_eq!(
        store.log_tile(0, 0).await.unwrap(),
        Some(vec![7; 96]),
        "a tile never shrinks"
    );
    assert_eq!(store.checkpoint_at(events + 1).await.unwrap(), None);
    store.release_sequencer(&lease).await.unwrap();
}

/// A sequencer saves over the state it started from: a stale `previous` (another sequencer
/// saved since) is a `LogConflict::Moved`, and nothing of the refused save is kept.
pub async fn stale_previous_is_a_conflict(store: Arc<dyn Store>) {
    Kit::new(&store, "sp", 5, 1).await;
    let events = log_size(&store).await;
    assert!(events >= 4);
    let lease = kit_lease(&store).await;
    store
        .save_log_state(&lease, None, state(2, 1), vec![tile(0, 2)], at(1))
        .await
        .unwrap();
    let stale: [(Option<u64>, &str); 4] = [
        (None, "a first save again, over a saved state"),
        (Some(1), "a smaller previous size"),
        (Some(3), "a previous size never saved"),
        (Some(events), "the size it means to reach"),
    ];
    for (previous, why) in stale {
        let err = store
            .save_log_state(&lease, previous, state(4, 3), vec![tile(0, 4)], at(2))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::LogConflict(LogConflict::Moved { saved: Some(2), expected })
                    if expected == previous
            ),
            "{why}: {err:?}"
        );
        assert_eq!(store.log_state().await.unwrap(), Some(state(2, 1)), "{why}");
        assert_eq!(store.checkpoint_at(4).await.unwrap(), None, "{why}");
        assert_eq!(
            store.log_tile(0, 0).await.unwrap(),
            Some(vec![7; 64]),
            "{why}: the refused save's tile was kept"
        );
    }
    // Over the state it read, the same save goes through.
    store
        .save_log_state(&lease, Some(2), state(4, 3), vec![tile(0, 4)], at(3))
        .await
        .unwrap();
    assert_eq!(store.log_state().await.unwrap(), Some(state(4, 3)));
    assert_eq!(
        store.checkpoint_at(4).await.unwrap().as_deref(),
        Some("checkpoint 4\n")
    );
    assert_eq!(store.log_tile(0, 0).await.unwrap(), Some(vec![7; 128]));
    store.release_sequencer(&lease).await.unwrap();
}
