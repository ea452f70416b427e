//! The audit log's signed state: checkpoints only move forward, never past the events, and a
//! checkpoint, its tiles and the tree state are saved together (I5).

use std::sync::Arc;

use touchmark_core::event::Sha256Hash;
use touchmark_store::{LogState, LogTile, Store, StoreError};

use super::kit::{Kit, at};

fn state(size: u64, root: u8) -> LogState {
    LogState {
        size,
        root: Sha256Hash([root; 32]),
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

pub async fn checkpoints_only_move_forward(store: Arc<dyn Store>) {
    assert_eq!(
        store.log_state().await.unwrap(),
        None,
        "a new store has signed nothing"
    );
    // The kit's set-up appends events (product, factory, stations, order).
    Kit::new(&store, "lg", 5, 1).await;
    let events = store.event_count().await.unwrap();
    assert!(events >= 3);

    store
        .save_log_state(state(2, 1), vec![tile(0, 2)], at(1))
        .await
        .unwrap();
    store
        .save_log_state(state(3, 2), vec![tile(0, 3)], at(2))
        .await
        .unwrap();
    assert_eq!(store.log_state().await.unwrap(), Some(state(3, 2)));
    assert_eq!(
        store.checkpoint_at(2).await.unwrap().as_deref(),
        Some("checkpoint 2\n")
    );
    assert_eq!(store.log_tile(0, 0).await.unwrap(), Some(vec![7; 96]));

    // Never backwards, never a second root for a signed size, never past the events.
    for (bad, why) in [
        (state(2, 9), "a smaller size"),
        (state(3, 9), "the same size again"),
        (state(events + 1, 9), "more entries than events"),
    ] {
        let err = store
            .save_log_state(bad, vec![tile(0, 1)], at(3))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{why}: {err:?}");
    }
    // Nothing of a refused save is kept: not the state, not its tile.
    assert_eq!(store.log_state().await.unwrap(), Some(state(3, 2)));
    assert_eq!(
        store.log_tile(0, 0).await.unwrap(),
        Some(vec![7; 96]),
        "a tile never shrinks"
    );
    assert_eq!(store.checkpoint_at(events + 1).await.unwrap(), None);
}
