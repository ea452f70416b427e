//! Firmware (design.md §7): release keys and firmware signing keys stored with their events,
//! read back as stored, per product; a taken id or a key registered twice writes nothing.

use std::sync::Arc;

use touchmark_core::event::{Actor, Event, EventBody, Sha256Hash};
use touchmark_core::firmware::{FirmwareKey, ReleaseKey, ReleaseKeyAlgorithm};

use crate::{Store, StoreError};

use super::kit::{at, check_log, log_size, product, product_created, product_id};

fn release_key(id: &str, product: &str, secs: i64) -> (ReleaseKey, Event) {
    let key = ReleaseKey {
        id: id.into(),
        product: product_id(product),
        algorithm: if secs % 2 == 0 {
            ReleaseKeyAlgorithm::X25519
        } else {
            ReleaseKeyAlgorithm::Ec256
        },
        public_key_pem: format!("-----BEGIN PUBLIC KEY-----\n{id}\n-----END PUBLIC KEY-----\n"),
        public_key_sha256: Sha256Hash::of(id.as_bytes()),
        created_at: at(secs),
    };
    let event = Event::new(
        key.created_at,
        EventBody::ReleaseKeyCreated {
            product: key.product.clone(),
            release_key: key.id.clone(),
            algorithm: key.algorithm.as_str().into(),
            store: "memory".into(),
            public_key_sha256: key.public_key_sha256,
            actor: Actor::System,
        },
    );
    (key, event)
}

fn firmware_key(product: &str, seed: &str, secs: i64) -> (FirmwareKey, Event) {
    let key = FirmwareKey {
        product: product_id(product),
        key_id: Sha256Hash::of(seed.as_bytes()),
        algorithm: "ed25519".into(),
        public_key_pem: format!("-----BEGIN PUBLIC KEY-----\n{seed}\n-----END PUBLIC KEY-----\n"),
        created_at: at(secs),
    };
    let event = Event::new(
        key.created_at,
        EventBody::FirmwareKeyAdded {
            product: key.product.clone(),
            key_id: key.key_id,
            algorithm: key.algorithm.clone(),
            actor: Actor::System,
        },
    );
    (key, event)
}

/// Release keys and signing keys of two products: each read back as stored, oldest first, only
/// under its product, with one event each; a taken release key id and a signing key registered
/// twice for one product are `Exists` and write nothing, while the same signing key may be
/// registered for another product.
pub async fn firmware_keys_are_kept_per_product(store: Arc<dyn Store>) {
    for id in ["fw", "other"] {
        let p = product(id);
        store
            .create_product(p.clone(), product_created(&p))
            .await
            .unwrap();
    }
    let (second, e2) = release_key("rk-2", "fw", 20);
    let (first, e1) = release_key("rk-1", "fw", 11);
    store.create_release_key(second.clone(), e2).await.unwrap();
    store.create_release_key(first.clone(), e1).await.unwrap();
    let (other, e) = release_key("rk-3", "other", 30);
    store.create_release_key(other.clone(), e).await.unwrap();

    let (signing, e) = firmware_key("fw", "sign-1", 40);
    store.add_firmware_key(signing.clone(), e).await.unwrap();
    let (same_elsewhere, e) = firmware_key("other", "sign-1", 41);
    store
        .add_firmware_key(same_elsewhere.clone(), e)
        .await
        .unwrap();
    let size = log_size(&store).await;

    let (taken, e) = release_key("rk-1", "other", 50);
    assert!(matches!(
        store.create_release_key(taken, e).await,
        Err(StoreError::Exists(_))
    ));
    let (again, e) = firmware_key("fw", "sign-1", 51);
    assert!(matches!(
        store.add_firmware_key(again, e).await,
        Err(StoreError::Exists(_))
    ));
    assert_eq!(log_size(&store).await, size);

    let fw = product_id("fw");
    assert_eq!(store.release_keys(&fw).await.unwrap(), [first, second]);
    assert_eq!(
        store.release_keys(&product_id("other")).await.unwrap(),
        [other]
    );
    assert_eq!(store.firmware_keys(&fw).await.unwrap(), [signing]);
    assert_eq!(
        store.firmware_keys(&product_id("other")).await.unwrap(),
        [same_elsewhere]
    );
    let events = check_log(&store).await;
    let kinds = |kind: &str| events.iter().filter(|e| e.body.kind() == kind).count();
    assert_eq!(kinds("release_key.created"), 3);
    assert_eq!(kinds("firmware_key.added"), 2);
}
