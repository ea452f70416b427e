//! Firmware (design.md §7): release keys and firmware signing keys stored with their events,
//! read back as stored, per product; a taken id or a key registered twice writes nothing.
//! Releases keep their SBOM's components, found again by package URL key.

use std::sync::Arc;

use touchmark_core::event::{Actor, Event, EventBody, Sha256Hash};
use touchmark_core::firmware::{
    ComponentRelease, FirmwareKey, NewRelease, Release, ReleaseComponent, ReleaseKey,
    ReleaseKeyAlgorithm,
};

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

fn component(key: &str, purl: &str, version: Option<&str>) -> ReleaseComponent {
    ReleaseComponent {
        key: key.into(),
        purl: purl.into(),
        version: version.map(Into::into),
    }
}

fn new_release(
    id: &str,
    product: &str,
    version: &str,
    secs: i64,
    components: Vec<ReleaseComponent>,
) -> (NewRelease, Event) {
    let sbom = format!("{{\"sbom of\":\"{id}\"}}").into_bytes();
    let release = Release {
        id: id.into(),
        product: product_id(product),
        version: version.into(),
        image_sha256: Sha256Hash::of(id.as_bytes()),
        image_size: 5,
        signing_key: Sha256Hash([3; 32]),
        release_key: format!("rk-{product}"),
        plaintext_hash: "00".into(),
        sbom_sha256: Some(Sha256Hash::of(&sbom)),
        created_at: at(secs),
        withdrawn_at: None,
    };
    let event = Event::new(
        release.created_at,
        EventBody::ReleaseCreated {
            product: release.product.clone(),
            release: release.id.clone(),
            version: release.version.clone(),
            image_sha256: release.image_sha256,
            size: 5,
            signing_key: release.signing_key,
            release_key: release.release_key.clone(),
            sbom_sha256: release.sbom_sha256,
            actor: Actor::System,
        },
    );
    (
        NewRelease {
            release,
            image: b"image".to_vec(),
            sbom: Some(sbom),
            components,
        },
        event,
    )
}

/// A release's SBOM components are stored with it and found by their package URL key across
/// releases and products, with each release's version and the component's; an unknown key
/// finds nothing; a release refused as taken stores none of its components.
pub async fn release_components_are_found_by_key(store: Arc<dyn Store>) {
    for id in ["fw", "other"] {
        let p = product(id);
        store
            .create_product(p.clone(), product_created(&p))
            .await
            .unwrap();
        let (key, e) = release_key(&format!("rk-{id}"), id, 1);
        store.create_release_key(key, e).await.unwrap();
    }
    let rustls = "pkg:cargo/rustls";
    let (second, e2) = new_release(
        "rel-2",
        "fw",
        "1.1.0",
        20,
        vec![
            component(rustls, "pkg:cargo/rustls@0.23.6", Some("0.23.6")),
            component("pkg:cargo/ring", "pkg:cargo/ring@0.17.8", Some("0.17.8")),
        ],
    );
    let (first, e1) = new_release(
        "rel-1",
        "fw",
        "1.0.0",
        10,
        vec![
            component(rustls, "pkg:cargo/rustls@0.23.5", Some("0.23.5")),
            component(rustls, "pkg:cargo/rustls@0.21.0?feature=x", None),
        ],
    );
    let (other, e3) = new_release(
        "rel-3",
        "other",
        "2.0.0",
        30,
        vec![component(rustls, "pkg:cargo/rustls@0.23.5", Some("0.23.5"))],
    );
    let (bare, e4) = new_release("rel-4", "other", "2.1.0", 40, Vec::new());
    for (r, e) in [(second, e2), (first.clone(), e1), (other, e3), (bare, e4)] {
        store.create_release(r, e).await.unwrap();
    }
    let size = log_size(&store).await;

    // The product's version is taken: nothing of the release is written, its components
    // neither.
    let (taken, e) = new_release(
        "rel-5",
        "fw",
        "1.0.0",
        50,
        vec![component("pkg:cargo/taken", "pkg:cargo/taken@1.0.0", None)],
    );
    assert!(matches!(
        store.create_release(taken, e).await,
        Err(StoreError::Exists(_))
    ));
    assert_eq!(log_size(&store).await, size);
    assert!(
        store
            .releases_with_component("pkg:cargo/taken")
            .await
            .unwrap()
            .is_empty()
    );

    let found = |release: &str, product: &str, version: &str, purl: &str, cv: Option<&str>| {
        ComponentRelease {
            release: release.into(),
            product: product_id(product),
            version: version.into(),
            purl: purl.into(),
            component_version: cv.map(Into::into),
        }
    };
    assert_eq!(
        store.releases_with_component(rustls).await.unwrap(),
        [
            found(
                "rel-1",
                "fw",
                "1.0.0",
                "pkg:cargo/rustls@0.21.0?feature=x",
                None
            ),
            found(
                "rel-1",
                "fw",
                "1.0.0",
                "pkg:cargo/rustls@0.23.5",
                Some("0.23.5")
            ),
            found(
                "rel-2",
                "fw",
                "1.1.0",
                "pkg:cargo/rustls@0.23.6",
                Some("0.23.6")
            ),
            found(
                "rel-3",
                "other",
                "2.0.0",
                "pkg:cargo/rustls@0.23.5",
                Some("0.23.5")
            ),
        ]
    );
    assert_eq!(
        store
            .releases_with_component("pkg:cargo/ring")
            .await
            .unwrap(),
        [found(
            "rel-2",
            "fw",
            "1.1.0",
            "pkg:cargo/ring@0.17.8",
            Some("0.17.8")
        )]
    );
    // The key is matched whole: neither a prefix nor a full package URL finds anything.
    for miss in [
        "pkg:cargo/rust",
        "pkg:cargo/rustls@0.23.5",
        "pkg:npm/rustls",
    ] {
        assert!(
            store
                .releases_with_component(miss)
                .await
                .unwrap()
                .is_empty(),
            "{miss}"
        );
    }
    assert_eq!(
        store.release_sbom("rel-1").await.unwrap(),
        first.sbom.clone()
    );
}
