//! Devices in the field (issue 17): field tokens, and challenges accepted once.

use std::sync::Arc;

use touchmark_core::TokenId;
use touchmark_core::entity::Role;
use touchmark_core::event::{Actor, Event, EventBody, Sha256Hash};

use super::kit::at;
use crate::{NewToken, Store, StoredChallenge};

/// A token of role `field` is stored and read back with its role.
pub async fn field_tokens_round_trip(store: Arc<dyn Store>) {
    let token = NewToken {
        id: TokenId::parse("t-field").unwrap(),
        secret_sha256: Sha256Hash::of(b"field secret"),
        role: Role::Field,
        label: "eu cloud".into(),
        at: at(1),
    };
    let event = Event::new(
        token.at,
        EventBody::TokenCreated {
            token: token.id.clone(),
            role: Role::Field,
            actor: Actor::System,
        },
    );
    store.create_token(token.clone(), event).await.unwrap();
    let read = store
        .token_by_secret(token.secret_sha256)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((read.id, read.role), (token.id, Role::Field));
}

/// A challenge reads back as stored, once unused and then used; one never added reads as
/// none; of many proofs naming one nonce at once, exactly one finds it unused; expired
/// challenges go when a new one is added.
pub async fn challenges_are_used_once(store: Arc<dyn Store>) {
    let token = TokenId::parse("t-field").unwrap();
    let nonce = Sha256Hash::of(b"nonce 1");
    store
        .add_challenge(nonce, &token, at(60), at(0))
        .await
        .unwrap();
    let first = store.use_challenge(nonce).await.unwrap();
    assert_eq!(
        first,
        Some(StoredChallenge {
            token: token.clone(),
            expires_at: at(60),
            used_before: false,
        })
    );
    let again = store.use_challenge(nonce).await.unwrap().unwrap();
    assert!(again.used_before);
    assert_eq!(
        store
            .use_challenge(Sha256Hash::of(b"never given"))
            .await
            .unwrap(),
        None
    );

    let raced = Sha256Hash::of(b"nonce 2");
    store
        .add_challenge(raced, &token, at(60), at(0))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.use_challenge(raced).await.unwrap().unwrap() })
        })
        .collect();
    let mut unused = 0;
    for task in tasks {
        if !task.await.unwrap().used_before {
            unused += 1;
        }
    }
    assert_eq!(unused, 1, "a nonce is accepted once");

    // Both expired by at(61): adding another deletes them.
    store
        .add_challenge(Sha256Hash::of(b"nonce 3"), &token, at(200), at(61))
        .await
        .unwrap();
    assert_eq!(store.use_challenge(nonce).await.unwrap(), None);
    assert_eq!(store.use_challenge(raced).await.unwrap(), None);
}
